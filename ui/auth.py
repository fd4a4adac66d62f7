"""Optional sign-in, configured in .streamlit/secrets.toml: an `[auth]` section (OIDC through `st.login`) or a
`password = "..."` line. When either is set, nothing else renders before sign-in."""

from __future__ import annotations

import hmac

import streamlit as st


def _secrets() -> dict:
    try:
        return dict(st.secrets)
    except Exception:  # no secrets.toml: sign-in is not configured
        return {}


def require_login() -> None:
    secrets = _secrets()
    if "auth" in secrets:
        if not st.user.is_logged_in:
            st.title("Sign in")
            st.button("Log in", on_click=st.login)
            st.stop()
        st.sidebar.button("Log out", on_click=st.logout)
    elif "password" in secrets:
        if st.session_state.get("signed_in"):
            return
        st.title("Sign in")
        with st.form("sign-in"):
            password = st.text_input("Password", type="password")
            submitted = st.form_submit_button("Sign in")
        # compare_digest: the time taken does not reveal how much of a guess was right
        if submitted and hmac.compare_digest(password.encode(), str(secrets["password"]).encode()):
            st.session_state["signed_in"] = True
            st.rerun()
        if submitted:
            st.error("Wrong password.")
        st.stop()
