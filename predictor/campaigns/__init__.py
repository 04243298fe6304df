"""Step 5, customers to actions. The campaign catalogue (`catalogue`), who a campaign may reach
(`eligibility`), the expected value of each customer-campaign pair (`value`) and the pairs worth
targeting (`candidates`), who gets which campaign within a budget (`allocation`), control groups
(`holdout`), the plan that puts them together (`planning`), an empty plan explained in a marketer's
words (`wording`) with the nearest plan that works (`nearest`), audience exports (`export`), each
customer's next best action (`next_action`) and product suggestions from co-purchases (`products`).
Settings come in as arguments: nothing here reads the process's settings."""
