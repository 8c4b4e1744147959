"""Importers: bring runs recorded elsewhere (MARS databases, CMBAgent chat histories, session logs and benchmark
trials, AG2 runtime-logging databases, XES event logs) into the capture store under the canonical vocabulary.

Every importer is an :class:`Importer`: idempotent and order-independent (canonical ids, one transaction per run,
the same real run from several sources merged into one, content hashes telling changed records from unchanged
ones), redacts secrets like capture does, reports what it could not map, and raises :class:`SourceError` naming
the file and place of bad input.
"""

from capture.importers.ag2_log import import_ag2_log
from capture.importers.cmbagent_db import import_cmbagent_db
from capture.importers.cmbagent_history import import_cmbagent_history
from capture.importers.common import Importer, ImportReport, SourceError
from capture.importers.trials import import_cmbagent_trials
from capture.importers.xes import import_xes

__all__ = ["ImportReport", "Importer", "SourceError", "import_ag2_log", "import_cmbagent_db",
           "import_cmbagent_history", "import_cmbagent_trials", "import_xes"]
