"""The store at the ground of curator: Lance tables, schemas, the run log, SQL over it."""
from .schema import TABLES, arrow_schema, table_schema
from .store import DEFAULT_STORE, Store, Transaction

__all__ = ["DEFAULT_STORE", "TABLES", "Store", "Transaction", "arrow_schema", "table_schema"]
