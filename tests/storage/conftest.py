from tests.storage.dbfixtures import database, db_url

__all__ = ["database", "db_url"]
