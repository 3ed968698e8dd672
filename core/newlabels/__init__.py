"""New labels: domain adaptation, pools, acquisition, the active-learning cycle, campaigns."""
