"""Step 1 of the pipeline, raw transactions to a clean table: the column schema and adapters
(`schema`), readers that stream CSV, CSV.gz and Parquet logs with row-level errors (`readers`), the
cleaning rules and their report (`cleaning`, `cleaning_report`), the entry points that run both
(`load`: `load_transactions`, `source_fingerprint`, `parse_column_map`) and the product category map
(`categories`). Nothing here knows about models, customers or search."""
