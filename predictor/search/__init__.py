"""Step 4, profiles to a searchable index: the embedding models (`embeddings`) and their on-disk cache
(`embedding_cache`), the Chroma-backed profile index (`index`) and the background index jobs (`jobs`).
Filtering is not done here: a search asks `predictor.customers.audience` which rows qualify."""
