"""Importers: bring runs recorded elsewhere (MARS databases, CMBAgent chat histories and session logs, AG2
runtime-logging databases, XES event logs) into the capture store under the canonical vocabulary.

Every importer is idempotent (deterministic ids, one transaction per run, runs already imported are skipped),
reports what it could not map, and raises :class:`SourceError` naming the file and place of bad input.
"""

from capture.importers.ag2_log import import_ag2_log
from capture.importers.cmbagent_db import import_cmbagent_db
from capture.importers.cmbagent_history import import_cmbagent_history
from capture.importers.common import ImportReport, SourceError
from capture.importers.xes import import_xes

__all__ = ["ImportReport", "SourceError", "import_ag2_log", "import_cmbagent_db", "import_cmbagent_history",
           "import_xes"]
