"""Step 3, scores to the customers a marketer talks about: tiers, lifecycle stages and RFM segments
(`tiers`), one text profile per customer (`profiles`) and the one audience engine (`audience`) that
every filter in the product goes through: tools, campaign eligibility and the index's filtered search."""
