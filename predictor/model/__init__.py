"""Step 2, clean transactions to scored customers: point-in-time features (`features`), the BG/NBD
and last-period baselines (`baselines`), the XGBoost value and churn estimators (`estimators`),
explanations (`explain`), held-out evaluation and its metrics (`evaluation`, `metrics`), the saved
model bundle (`artifacts`), scoring and stable rescoring (`scoring`, `rescoring`)."""
