"""Step 5, customers to actions: the campaign catalogue, eligibility through the audience engine,
budget allocation, control groups and exports (`planning`), the next best action of one customer,
and product suggestions from co-purchases (`products`)."""
