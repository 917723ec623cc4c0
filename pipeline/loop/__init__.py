"""The loop: a campaign's steps or stream, one candidate's lifecycle, the population it draws
parents from, the commit of a step, operators, selection and solve rates, and the same
engine and judge work run on a remote (Dask) worker."""
