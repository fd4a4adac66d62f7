"""The web app's entry: one page per job to be done; each page is a thin layer over the library."""

from __future__ import annotations

import streamlit as st

from ui.auth import require_login

st.set_page_config(page_title="Assistant", page_icon="💬", layout="wide")
require_login()
pages = [
    st.Page("views/chat.py", title="Chat", icon="💬", default=True),
    st.Page("views/knowledge.py", title="Knowledge base", icon="📚"),
    st.Page("views/finetune.py", title="Fine-tune", icon="🎛️"),
    st.Page("views/compare.py", title="Compare", icon="📊"),
]
st.navigation(pages).run()
