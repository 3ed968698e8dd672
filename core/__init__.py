"""Domain, ML and workflows of the XMTC taxonomy tool; never imports streamlit."""
