"""Step 1 of the pipeline, raw transactions to a clean table: the column schema and adapters
(`schema`), readers that stream CSV, CSV.gz and Parquet logs with row-level errors (`load`), and the
product category map (`categories`). Nothing here knows about models, customers or search."""
