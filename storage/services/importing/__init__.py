"""The import of order documents: read as a stream (``stream.py``), each entry validated
(``entries.py``) and staged (``staging.py``), then checked against the store and written in one
transaction (``writing.py``); ``importer.py`` runs it all."""
