"""The time-based model (DESIGN section 4b, docs/model.md): schema, loading, tables, kernel."""
