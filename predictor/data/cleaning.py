"""Cleaning the typed lines of a transaction file, with a report of every rule.

Cleaning rules, in the order they are applied (each rule sees what the previous ones kept):

1. exact duplicates       - identical lines (every mapped column equal) are kept once. Skipped
                            when the source has no order ids: then two identical lines can be two
                            real purchases (CDNOW has 255 such pairs).
2. missing customer       - lines without a customer id cannot be attributed; removed.
3. non-product codes      - Online Retail postage, fees, manual/discount/bad-debt adjustments,
                            samples, gift vouchers (see `predictor.data.schema.NON_PRODUCT_CODES`).
4. non-positive prices    - lines whose unit price is <= 0 (only where the source has a price).
5. cancellations          - a cancellation line stays in the data as a negative line dated when
                            it happened, so history before that day is never rewritten. It is
                            matched against the same customer's earlier purchases of the same
                            product: the part with nothing left to cancel is removed (a wholly
                            unmatched cancellation is dropped, a partly matched one is capped at
                            what was bought and not yet cancelled).
6. extreme outliers       - flagged (`is_outlier`), never dropped: purchase lines far above the
                            robust spread of line amounts, and later cancellations of the same
                            product by the same customer (see `_flag_outliers`).

Every rule's rows and money are in the `CleaningReport` (predictor.data.cleaning_report). The rules
run as DuckDB SQL on the reader's connection, so the file streams through once.
"""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa

from predictor.data.cleaning_report import CleaningReport, RuleResult
from predictor.data.readers import SourceReader, sql_literal
from predictor.data.schema import (
    ADJUSTMENT_INVOICE_PREFIX,
    CANCELLATION_INVOICE_PREFIX,
    NON_PRODUCT_CODE_PREFIXES,
    NON_PRODUCT_CODES,
    OUTPUT_COLUMNS,
    OUTPUT_DTYPES,
)

# Bumped whenever a rule changes what comes out, so artifacts can tell cleanings apart.
CLEANING_VERSION = "1"


def stage_rules(reader: SourceReader) -> None:
    """Table `ruled`: the typed lines, exact duplicates folded into a count `n`, each tagged with the
    first removal rule that applies (`reason`). Raises DataError for an empty file or a bad value."""
    while True:
        typed = reader.typed_select(_rule_columns(reader.schema))
        # Exact duplicates by hash aggregation (n = copies of the line), not a window sort.
        grouped = (f"SELECT *, count(*) AS n FROM ({typed}) GROUP BY ALL" if reader.has_order_id
                   else f"SELECT *, 1 AS n FROM ({typed})")
        reader.con.execute("DROP TABLE IF EXISTS ruled")
        reader.sql(f"""
            CREATE TABLE ruled AS
            SELECT *, CASE
                WHEN customer_id IS NULL THEN 'missing_customer'
                WHEN non_product THEN 'non_product_codes'
                WHEN unit_price <= 0 THEN 'non_positive_price'
              END AS reason
            FROM ({grouped})""", "read the file")
        n_rows, n_bad = reader.con.execute(
            "SELECT coalesce(sum(n), 0), count(*) FILTER (WHERE bad IS NOT NULL) FROM ruled").fetchall()[0]
        if n_rows == 0:
            raise reader.error("the file has no transactions", expected="at least one data row after the header")
        if not n_bad:
            return
        reader.raise_first_bad()  # returns only after re-detecting the timestamp format: stage again


def _rule_columns(schema: str) -> dict[str, str]:
    """SQL (over the source's order and product ids) for the cancellation and non-product tags."""
    if schema != "online_retail":
        return {"is_cancellation": "coalesce(amount < 0, false)", "non_product": "false"}
    codes = ", ".join(sql_literal(c) for c in NON_PRODUCT_CODES)
    prefixes = " OR ".join(f"lower(product_id) LIKE {sql_literal(p.lower() + '%')}" for p in NON_PRODUCT_CODE_PREFIXES)
    return {
        "is_cancellation": f"coalesce(upper(order_id) LIKE '{CANCELLATION_INVOICE_PREFIX}%', false)",
        "non_product": (f"coalesce(upper(product_id) IN ({codes}) OR {prefixes} "
                        f"OR upper(order_id) LIKE '{ADJUSTMENT_INVOICE_PREFIX}%', false)"),
    }


def clean(reader: SourceReader, outlier_z: float) -> tuple[CleaningReport, pd.DataFrame]:
    """Apply the rules to table `ruled`; the report and the clean lines in OUTPUT_COLUMNS order."""
    con = reader.con
    read_stats = con.execute("""
        SELECT sum(n), count(DISTINCT customer_id), coalesce(sum(n * amount), 0),
               sum(n - 1), coalesce(sum((n - 1) * amount), 0) FROM ruled""").fetchall()[0]
    removed = {r[0]: (r[1], r[2]) for r in con.execute(
        "SELECT reason, count(*), coalesce(sum(amount), 0) FROM ruled WHERE reason IS NOT NULL GROUP BY reason"
    ).fetchall()}
    removed["exact_duplicates"] = (read_stats[3], read_stats[4])
    _net_cancellations(con, has_product="product_id" in reader.mapping)
    con.execute("DROP TABLE ruled")
    removed["unmatched_cancellations"] = con.execute(
        "SELECT count(*), coalesce(sum(amount_in), 0) FROM netted WHERE unmatched").fetchall()[0]
    capped = con.execute(
        "SELECT count(*), coalesce(sum(amount_in - amount), 0) FROM netted WHERE capped").fetchall()[0]
    threshold = _flag_outliers(con, outlier_z)
    con.execute("DROP TABLE netted")
    report = _report(reader, read_stats, removed, capped, threshold, outlier_z)
    return report, _output_frame(con)


def _net_cancellations(con, has_product: bool) -> None:
    """Table `netted` from `ruled`: cancellations netted against what was bought, the rest marked."""
    # Per customer and product, a running balance of units bought minus units cancelled that never
    # goes below zero (a random walk reflected at 0: balance = S - min(0, running min of S)). What a
    # cancellation actually nets is the drop in that balance; the rest cancels nothing we saw.
    # Purchases sort before cancellations at the same instant so an order cancelled within the
    # minute still matches. Only keys with a cancellation need the windows, which keeps the sorts small.
    units = "abs(coalesce(quantity, amount))" if has_product else "abs(amount)"
    order = "ORDER BY timestamp, is_cancellation, order_id, x, amount"
    win = f"PARTITION BY customer_id, pid {order} ROWS UNBOUNDED PRECEDING"
    cols = "customer_id, order_id, timestamp, product_id, product_name, category, country, is_cancellation"
    con.execute(f"""
        CREATE TABLE netted AS
        WITH k AS (
            SELECT *, coalesce(product_id, '') AS pid,
                   CASE WHEN is_cancellation THEN -{units} ELSE {units} END AS x
            FROM ruled WHERE reason IS NULL),
        ck AS (SELECT DISTINCT customer_id, pid FROM k WHERE is_cancellation),
        a AS (SELECT k.* FROM k SEMI JOIN ck USING (customer_id, pid)),
        s AS (SELECT *, sum(x) OVER ({win}) AS s FROM a),
        b AS (SELECT *, s - least(0, min(s) OVER ({win})) AS bal FROM s),
        n AS (SELECT *, coalesce(lag(bal) OVER (PARTITION BY customer_id, pid {order}), 0) - bal AS netted
              FROM b)
        SELECT {cols}, amount AS amount_in,
               CASE WHEN is_cancellation AND x <> 0 THEN amount * netted / -x ELSE amount END AS amount,
               CASE WHEN is_cancellation AND x <> 0 THEN quantity * netted / -x ELSE quantity END AS quantity,
               is_cancellation AND x <> 0 AND netted <= 0 AS unmatched,
               is_cancellation AND x <> 0 AND netted > 0 AND netted < -x AS capped
        FROM n
        UNION ALL
        SELECT {cols}, amount AS amount_in, amount, quantity, false AS unmatched, false AS capped
        FROM k ANTI JOIN ck USING (customer_id, pid)""")


def _flag_outliers(con, outlier_z: float) -> float | None:
    """Table `final` from `netted`: matched lines with `is_outlier`; returns the amount threshold."""
    # A purchase line whose amount is more than `outlier_z` robust standard deviations (1.4826 x MAD
    # of log line amount) above the median log line amount. On a log scale the rule is unit-free and
    # barely moved by the outliers it looks for. At z = 8 it is about 24,700 on Online Retail, where
    # only three purchases exceed it: the 80,995- and 74,215-unit lines (cancelled the same day) and a
    # 38,970 line whose refund was booked under a "Manual" code; the next largest line is 7,145. On
    # CDNOW it is about 18,000 against a largest line of 1,286. It uses the whole file, so it is the
    # one figure that looks ahead in time; being a median and MAD, later lines barely move it.
    # A cancellation of the same product by the same customer at or after a flagged purchase is
    # flagged too, so a model that skips flagged lines skips both halves, never a lone refund.
    stats = con.execute("""SELECT median(ln(amount)), 1.4826 * mad(ln(amount)) FROM netted
                           WHERE NOT is_cancellation AND NOT unmatched AND amount > 0""").fetchall()[0]
    threshold = None
    if stats[0] is not None and stats[1] and stats[1] > 0:
        threshold = math.exp(stats[0] + outlier_z * stats[1])
    thr = "NULL" if threshold is None else repr(threshold)
    con.execute(f"""
        CREATE TABLE final AS
        WITH kept AS (SELECT * FROM netted WHERE NOT unmatched),
        flagged_buys AS (
            SELECT customer_id AS cid, coalesce(product_id, '') AS pid, min(timestamp) AS first_ts
            FROM kept WHERE NOT is_cancellation AND amount > {thr} GROUP BY ALL)
        SELECT kept.*, coalesce(
            CASE WHEN NOT is_cancellation THEN amount > {thr}
                 ELSE fb.first_ts IS NOT NULL AND timestamp >= fb.first_ts END, false) AS is_outlier
        FROM kept LEFT JOIN flagged_buys fb
            ON kept.customer_id = fb.cid AND coalesce(kept.product_id, '') = fb.pid""")
    return threshold


def _report(reader: SourceReader, read: tuple, removed: dict[str, tuple], capped: tuple,
            threshold: float | None, z: float) -> CleaningReport:
    con = reader.con
    cancelled = con.execute(
        "SELECT count(*), coalesce(sum(amount), 0) FROM final WHERE is_cancellation").fetchall()[0]
    outliers = con.execute("SELECT count(*), coalesce(sum(amount), 0) FROM final WHERE is_outlier").fetchall()[0]
    kept = con.execute("""SELECT count(*), count(DISTINCT customer_id), coalesce(sum(amount), 0),
                                 min(timestamp), max(timestamp) FROM final""").fetchall()[0]
    applies = {"exact_duplicates": reader.has_order_id, "non_product_codes": reader.schema == "online_retail",
               "non_positive_price": "unit_price" in reader.mapping}
    rules = [_removal_rule(name, removed, applies.get(name, True)) for name in _REMOVAL_RULES]
    rules += [
        RuleResult(name="cancellation_capped", action="capped",
                   description="cancellations larger than what was bought and not yet cancelled, cut to that amount",
                   rows_flagged=capped[0], amount_removed=float(capped[1])),
        RuleResult(name="cancellations_netted", action="kept",
                   description="cancellations kept as negative lines dated when they happened, so they net the "
                               "purchase only from that day on",
                   rows_flagged=cancelled[0], amount_flagged=float(cancelled[1])),
        RuleResult(name="extreme_outliers", action="flagged",
                   description=f"purchase lines more than {z:g} robust SDs above the median log line amount, "
                               "and later cancellations of that product by that customer; is_outlier=True, "
                               "not dropped",
                   rows_flagged=outliers[0], amount_flagged=float(outliers[1])),
    ]
    return CleaningReport(
        source=str(reader.path), source_schema=reader.schema, cleaning_version=CLEANING_VERSION,
        column_map=dict(reader.mapping) if reader.schema != "cdnow" else {},
        timestamp_format=reader.ts_format, rows_read=read[0], rows_kept=kept[0], customers_read=read[1],
        customers_kept=kept[1], amount_read=float(read[2]), amount_kept=float(kept[2]),
        first_timestamp=kept[3], last_timestamp=kept[4], outlier_threshold=threshold, rules=rules)


# Rules that remove lines, in report order: {name: (description, why it is skipped when it does not apply)}.
_REMOVAL_RULES = {
    "exact_duplicates": ("identical lines (every column equal) kept once",
                         "skipped: the source has no order ids, so identical lines may be separate purchases"),
    "missing_customer": ("lines without a customer id cannot be attributed to anyone", ""),
    "non_product_codes": ("postage, carriage, fees, manual/discount/bad-debt adjustments, samples and gift vouchers",
                          "skipped: only Online Retail has known non-product codes"),
    "non_positive_price": ("lines with a unit price of zero or less", "skipped: the source has no unit price"),
    "unmatched_cancellations": ("cancellations with no earlier purchase of that product by that customer left "
                                "to cancel", ""),
}


def _removal_rule(name: str, removed: dict[str, tuple], applies: bool) -> RuleResult:
    description, why_not = _REMOVAL_RULES[name]
    if not applies:
        return RuleResult(name=name, description=why_not, action="skipped")
    n, amount = removed.get(name, (0, 0.0))
    return RuleResult(name=name, description=description, action="removed", rows_removed=n,
                      amount_removed=float(amount))


def _output_frame(con) -> pd.DataFrame:
    """Table `final` as the output frame, in the order every consumer expects."""
    cols = ", ".join("CAST(timestamp AS TIMESTAMP_NS) AS timestamp" if c == "timestamp" else c
                     for c in OUTPUT_COLUMNS)
    table = con.sql(f"""
        SELECT {cols} FROM final
        ORDER BY customer_id, timestamp, order_id, is_cancellation, product_id NULLS FIRST, amount""").to_arrow_table()
    # Arrow-backed strings come across without a copy per value (object strings would double RSS).
    strings = {t: pd.StringDtype() for t in (pa.string(), pa.large_string(), pa.string_view())}
    out = table.to_pandas(types_mapper=strings.get)
    for col, dtype in OUTPUT_DTYPES.items():
        if str(out[col].dtype) != dtype:
            out[col] = out[col].astype(dtype)
    return out
