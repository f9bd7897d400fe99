"""Village statistics: the service behind ``cunan stats`` and the UI's dashboard."""

from cunan.stats.service import CaseNumbers, SightingsPerDay, StatsService, VillageStats

__all__ = ["CaseNumbers", "SightingsPerDay", "StatsService", "VillageStats"]
