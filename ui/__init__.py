"""The Streamlit app: thin pages over the `assistant` and `ingest` libraries."""
