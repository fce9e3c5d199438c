"""runkit's Alembic environment (``env.py``, ``versions/``), run by
:func:`runkit.storage.migrate.upgrade` or ``runkit db upgrade``. A package so that an
installed wheel carries ``env.py``; Alembic itself loads these files by path."""
