"""The web app's entry: one page per job to be done; each page is a thin layer over the library."""

from __future__ import annotations

import streamlit as st

from ui.auth import require_login

st.set_page_config(page_title="Assistant", page_icon=":material/chat:", layout="wide")
require_login()
pages = [
    st.Page("views/chat.py", title="Chat", icon=":material/chat:", default=True),
    st.Page("views/knowledge.py", title="Knowledge base", icon=":material/library_books:"),
    st.Page("views/finetune.py", title="Fine-tune", icon=":material/tune:"),
    st.Page("views/compare.py", title="Compare", icon=":material/bar_chart:"),
]
st.navigation(pages).run()
