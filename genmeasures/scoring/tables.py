"""Reading and writing result tables: moved to :mod:`genmeasures.tables.io`; these names stay
importable from here."""

from genmeasures.tables.io import TABLE_SUFFIXES, check_table_path, read_table, write_table

__all__ = ["TABLE_SUFFIXES", "check_table_path", "read_table", "write_table"]
