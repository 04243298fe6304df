"""The analytics core, upstream of everything: loading and cleaning transaction logs (schema, data,
categories), point-in-time features, the value/churn/interval models with their baselines, evaluation,
artifacts and scoring, tiers, lifecycle stages, RFM segments and value at risk, customer profiles, the
profile index (embeddings, Chroma), campaign planning and product suggestions, and `build`, which runs
them in order into one versioned build folder (`layout`). Imports nothing from tools/, agent/ or ui.py.
"""
