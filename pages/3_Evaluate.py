"""Evaluate: the test set, label statistics and each model version's metrics."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from core import versions
from core.evaluation_views import label_frequency
from ui.common import page_setup

db, user, project_id = page_setup("Evaluate")

stats = label_frequency(db, project_id)
c = st.columns(4)
c[0].metric("Test documents", f"{stats.test_documents:,}")
c[1].metric("Mean gold labels per document", f"{stats.mean_labels:.1f}")
c[2].metric("Labels with >= 20 documents", f"{stats.labels_20plus:,}")
c[3].metric("Labels used once", f"{stats.labels_once:,}")

if stats.frequencies:
    fig = px.histogram(x=stats.frequencies, nbins=60, log_y=True,
                       labels={"x": "documents per label", "y": "labels"}, title="Label frequency (long tail)")
    st.plotly_chart(fig, width="stretch")

st.subheader("Model versions")
rows = [{"version": v.name, "active": "yes" if v.active else "", **v.metrics}
        for v in versions.list_versions(db, project_id)]
if rows:
    st.dataframe(rows, hide_index=True, width="stretch")
    if not any(len(r) > 2 for r in rows):
        st.caption("No version has test metrics recorded yet: they are written when a model is trained.")
else:
    st.caption("No model version yet.")
