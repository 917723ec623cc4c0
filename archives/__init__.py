"""Quality-diversity archives: a CVT MAP-Elites archive and its centroid builder."""

from archives.centroids import build_centroids
from archives.cvt import AddStatus, ArchiveStats, CVTArchive, Elite

__all__ = ["AddStatus", "ArchiveStats", "CVTArchive", "Elite", "build_centroids"]
