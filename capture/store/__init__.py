"""The store room: the SQLAlchemy models of the capture store, engines and schema checks (``db``), Alembic
driven from code (``migrate``), row preparation (``records``), idempotent batched writes (``capture_store``) and
``skillmine db``. It imports ``capture.core`` only; the recorder's store sink loads it on the writer thread."""
