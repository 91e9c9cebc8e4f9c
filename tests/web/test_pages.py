"""The dashboard over real HTTP against a live `runq serve`: sign-in, pages, escaping, actions.

The browser itself is in test_e2e.py; these check what a browser would be sent.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Server
from tests.web.conftest import browser, signed_in

pytestmark = pytest.mark.timeout(60)


def test_token_trades_for_an_http_only_cookie_and_leaves_the_address(live: Server) -> None:
    with browser(live) as client:
        response = client.get(f"/?token={live.key}")

        assert response.status_code == 303
        assert response.headers["location"] == "/"
        cookie = response.headers["set-cookie"]
        assert "httponly" in cookie.lower()
        assert "samesite=strict" in cookie.lower()
        assert live.key not in cookie
        page = client.get("/")
        assert page.status_code == 200
        assert 'href="/endpoints/slow"' in page.text
        assert 'href="/endpoints/fails"' in page.text


def test_endpoint_page_token_redirects_to_the_same_page(live: Server) -> None:
    with browser(live) as client:
        response = client.get(f"/endpoints/slow?token={live.key}")
        assert (response.status_code, response.headers["location"]) == (303, "/endpoints/slow")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param("wrong", "missing or invalid API key", id="unknown key"),
        pytest.param("", "missing or invalid API key", id="empty token"),
    ],
)
def test_bad_token_shows_the_form_with_the_error(live: Server, token: str, message: str) -> None:
    with browser(live) as client:
        response = client.get(f"/?token={token}")
        assert response.status_code == 401
        assert '<form method="post" action="/login"' in response.text
        assert message in response.text
        assert "set-cookie" not in response.headers


def test_a_key_without_the_admin_scope_cannot_sign_in(live: Server) -> None:
    made = live.post("/admin/keys", json={"name": "ci", "scopes": ["invoke:slow"]})
    assert made.status_code == 200, made.text
    with browser(live) as client:
        response = client.get(f"/?token={made.json()['key']}")
        assert response.status_code == 401
        assert "is not an admin key" in response.text


def test_without_a_session_pages_ask_fragments_and_actions_refuse(live: Server) -> None:
    with browser(live) as client:
        page = client.get("/endpoints/slow")
        assert page.status_code == 401
        assert 'name="next" value="/endpoints/slow"' in page.text
        assert client.get("/fragments/endpoints").status_code == 401
        assert client.get("/endpoints/slow/live").status_code == 401
        assert client.post("/endpoints/slow/purge").status_code == 401
        # The API key in the header is not a session: the dashboard wants its cookie.
        assert client.post("/endpoints/slow/purge", headers=live.headers).status_code == 401


def test_login_form_sets_a_session_and_never_redirects_off_site(live: Server) -> None:
    with browser(live) as client:
        wrong = client.post("/login", data={"key": "nope", "next": "/"})
        assert wrong.status_code == 401
        assert "missing or invalid API key" in wrong.text
        right = client.post("/login", data={"key": live.key, "next": "//evil.example/x"})
        assert (right.status_code, right.headers["location"]) == (303, "/")
        assert client.get("/").status_code == 200


def test_cross_origin_posts_are_refused(live: Server) -> None:
    with signed_in(live) as client:
        evil = {"Origin": "http://evil.example"}
        assert client.post("/endpoints/slow/purge", headers=evil).status_code == 403
        assert client.post("/login", data={"key": live.key}, headers=evil).status_code == 403
        no_origin = httpx.Client(base_url=live.url, cookies=client.cookies, timeout=10)
        with no_origin:
            assert no_origin.post("/endpoints/slow/purge").status_code == 403


def test_user_text_is_escaped(live: Server) -> None:
    job = live.run("fails", {"input": {"message": "<img src=x onerror=alert(1)>"}})
    live.wait_status("fails", job, {"FAILED"})
    with signed_in(live) as client:
        slow = client.get("/endpoints/slow").text
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in slow
        assert "<script>alert" not in slow
        fails = client.get("/endpoints/fails").text
        assert "&lt;img src=x onerror=alert(1)&gt;" in fails
        assert "<img src=x" not in fails


def test_cancel_and_purge_from_the_page(live: Server) -> None:
    first, second, third = (live.run("slow", {"input": {"n": n}}) for n in range(3))
    with signed_in(live) as client:
        page = client.get("/endpoints/slow").text
        assert f'action="/endpoints/slow/jobs/{first}/cancel"' in page
        done = client.post(f"/endpoints/slow/jobs/{first}/cancel")
        assert (done.status_code, done.headers["location"]) == (
            303,
            "/endpoints/slow?notice=cancelled",
        )
        assert live.status("slow", first)["status"] == "CANCELLED"
        other = client.post(f"/endpoints/fails/jobs/{second}/cancel")  # not that endpoint's
        assert other.status_code == 404
        assert f"job &#39;{second}&#39; not found on endpoint &#39;fails&#39;" in other.text
        assert client.post("/endpoints/slow/purge").status_code == 303
        assert {live.status("slow", j)["status"] for j in (second, third)} == {"CANCELLED"}
        assert "Queue purged." in client.get("/endpoints/slow?notice=purged").text


@pytest.mark.parametrize(
    ("active", "maximum", "message"),
    [
        pytest.param("3", "2", "active workers (3) must not exceed max workers (2)", id="a>m"),
        pytest.param("0", "0", "max workers must be 1 or more, not 0", id="max 0"),
        pytest.param("-1", "2", "active workers must be 0 or more, not -1", id="negative"),
        pytest.param(
            "two",
            "2",
            "active workers: expected a whole number, got &#39;two&#39;",
            id="not a number",
        ),
    ],
)
def test_bad_worker_counts_show_an_error_on_the_page(
    live: Server, active: str, maximum: str, message: str
) -> None:
    with signed_in(live) as client:
        response = client.post(
            "/endpoints/slow/workers", data={"active_workers": active, "max_workers": maximum}
        )
        assert response.status_code == 400
        assert message in response.text
        assert 'role="alert"' in response.text
    [row] = [r for r in live.get("/admin/endpoints").json() if r["name"] == "slow"]
    assert (row["active_workers"], row["max_workers"]) == (0, 1)


def test_worker_change_is_kept_across_a_restart(server_factory: object) -> None:
    server: Server = server_factory()  # type: ignore[operator]
    server.add_endpoint("idle", "native_sleep.py", workers=0)
    server.start(wait_workers=False)
    with signed_in(server) as client:
        form = {"active_workers": "0", "max_workers": "4"}
        assert client.post("/endpoints/idle/workers", data=form).status_code == 303
    [row] = server.get("/admin/endpoints").json()
    assert (row["active_workers"], row["max_workers"]) == (0, 4)
    # The admin API's route does the same for scripts.
    bad = server.post("/admin/endpoints/idle/workers", json={"max_workers": "2"})
    assert (bad.status_code, bad.json()["error"]) == (
        400,
        'expected {"active_workers": <int>, "max_workers": <int>}',
    )
    done = server.post(
        "/admin/endpoints/idle/workers", json={"active_workers": 0, "max_workers": 2}
    )
    assert done.json()["scaling"]["max_workers"] == 2
    server.stop()
    server.endpoints.clear()  # serve from the store only, as after a deploy
    server.start(wait_workers=False)
    [row] = server.get("/admin/endpoints").json()
    assert (row["name"], row["active_workers"], row["max_workers"]) == ("idle", 0, 2)
    with signed_in(server) as client:
        assert "max_workers = 2" in client.get("/endpoints/idle").text
