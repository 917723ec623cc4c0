"""Processes the rest of pipeline/ starts: the timed process pool (judging, sandboxed code)
and the lifeline that takes every child process down with the campaign, however it dies."""
