"""The planner's canned replies: help, refusals and clarifying questions. No figures in them, so the
grounding check never has a number to verify."""

HELP = ("I answer questions about your customers from the scored data, with no LLM (offline mode). For example: "
        "'Who are my at-risk top customers?', 'Break down customers by tier', 'Tell me about customer <id>', "
        "'Find customers who buy tea sets', 'Plan a win-back campaign with a budget of two thousand pounds', "
        "'Export the lapsed customers to CSV', 'How accurate is the model?'.")
GREETING = "Hello! Ask me about your customers' value, churn risk, segments or campaigns."
OUT_OF_SCOPE = ("Sorry, that is outside what I can help with: I answer questions about your customers' value, "
                "churn risk, segments, campaigns and the model behind them.")
REFUSE_SEND = ("I can't send customer data to outside addresses, services or people. I can export an audience "
               "as a CSV file in the data directory, which you can download and share yourself.")
REFUSE_WRITE = ("I can't change or delete customer data: I only read the scored data and plan campaigns. "
                "Scores change when you rebuild from new transactions with `valuedesk build`.")
REFUSE_PII = ("I don't have (and won't provide) personal contact details such as addresses or phone numbers; "
              "I can list or export customer ids with their value, tier and segment.")
REFUSE_CONTACT = ("I can't email, text or otherwise contact customers, or send them codes or offers: ValueDesk reads "
                  "the scored data, plans campaigns and exports audiences. I can export these customers as a CSV for "
                  "your email tool, or plan a campaign (offer, channel, cost and expected return) for them.")
REFUSE_FABRICATE = "I can't make up figures: every number I give comes from the scored data and the model."
REFUSE_INJECTION = ("I can't do that: I follow only ValueDesk's own rules, and I don't reveal my instructions or "
                    "any keys. Ask me about your customers, segments, campaigns or the model.")
NOTE_INJECTION = ("(I ignored instructions in your message to send data elsewhere or change my rules: ValueDesk "
                  "only writes local files for you to download.)")
CLARIFY_VAGUE = ("Could you say a bit more about what you need? For example: which customers (a tier such as Gold, "
                 "a segment such as Champions, a country, lapsed or at-risk customers), and whether you want a list, "
                 "a breakdown, a campaign plan or a CSV export.")
CLARIFY_REFERENCE = ("Which customers or result do you mean? I have nothing earlier in this conversation to refer to; "
                     "please name the customers (e.g. Gold customers in Germany) or the customer id.")
CLARIFY_EXPORT = ("Which customers should I export? For example: at-risk customers in Germany, the Gold tier, the "
                  "Champions segment, lapsed customers, the audience of a campaign plan, or everyone. The CSV is "
                  "written to the data directory's exports folder for you to download.")
CLARIFY_CUSTOMER = ("Which customer? Please give me their customer id (you can find ids by asking for a list, "
                    "e.g. 'top customers in France'). I can't look customers up by name.")
CLARIFY_NO_ROW = ("The previous answer has no customer at that place in its list (it may have been empty). "
                  "Which customer do you mean? Give me the customer id, or ask for a list first.")
CLARIFY_ORDERS = ("To score a new customer I need their order history: the amount and the full date (day, month "
                  "and year) of each order, for example 'eighty pounds on the third of March and forty pounds on "
                  "the tenth of April' with the year added. Figures and dates may be written in words or digits.")
# What each tool can do, in a marketer's words: the clarifying question for an in-scope request that no
# tool answers as asked names the closest of these (agent.planner.pipeline).
CAPABILITIES = {
    "find_customers": "list customers by tier, segment, country, lifecycle stage, churn risk or value",
    "segment_summary": "break customers down by tier, segment, lifecycle stage or country",
    "search_profiles": "find customers by the products they buy",
    "recommend_campaigns": "plan a campaign (retention, win-back, reactivation, cross-sell or upgrade) for an "
                           "audience and a budget",
    "export_audience": "export an audience as a CSV file",
    "get_customer": "show one customer's detail, orders and next best action",
    "score_customer": "score a new customer from their order history",
    "model_report": "say how accurate the model is and what it was trained on",
    "model_health": "say whether the predictions still hold today and whether a retrain is due",
}
CLARIFY_CLOSEST = ("I can't answer {what} as asked: my tools work on customers (their scores, orders, segments and "
                   "campaigns). The closest things I can do: {options}. Which of these would help?")
