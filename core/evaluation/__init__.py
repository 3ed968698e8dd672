"""LLM-assisted evaluation: the judge, ratings, LLM-vs-SME agreement."""
