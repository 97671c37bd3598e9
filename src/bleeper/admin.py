"""``bleeper user``: account administration against the same store the server uses."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from datetime import datetime

from bleeper.chat.names import name_key, name_problem
from bleeper.chat.records import AuditEvent
from bleeper.config import add_store_arguments, store_location
from bleeper.store import AccountExists, Store, StoreError, open_store
from bleeper.store.passwords import hash_password, password_problem


def new_password(from_stdin: bool) -> str:
    """A password for an account, checked against the rules (ValueError says what is wrong)."""
    password = read_password(from_stdin)
    problem = password_problem(password)
    if problem:
        raise ValueError(f"password refused: {problem}")
    return password


def read_password(from_stdin: bool, confirm: bool = True) -> str:
    """From standard input (one line) for scripts, else asked twice on the terminal without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValueError("no terminal to ask for the password on: pipe it in with --password-stdin")
    first = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ; nothing was changed")
    return first


async def run_user(args: argparse.Namespace) -> int:
    db = store_location(args.db, args.config, "user")
    if db is None:
        return 2
    try:
        store = await open_store(db)
    except StoreError as exc:
        print(f"bleeper user: {exc}", file=sys.stderr)
        return 1
    try:
        return await _act(store, args)
    except (StoreError, ValueError) as exc:
        print(f"bleeper user: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def _act(store: Store, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        accounts = await store.list_accounts()
        if not accounts:
            print("no accounts yet: bleeper user add NAME")
        for account in accounts:
            flag = "  admin" if account.admin else ""
            print(f"{account.name:<32} created {_when(account.created_ms)}{flag}")
        return 0
    name = args.name
    key = name_key(name)
    if action == "add":
        problem = name_problem(name)
        if problem:
            raise ValueError(problem)
        password = new_password(args.password_stdin)
        try:
            await store.create_account(key, name, hash_password(password), args.admin, int(time.time() * 1000))
        except AccountExists:
            raise ValueError(f"{name} already has an account; use 'bleeper user passwd {name}' to reset it") from None
        await store.append_audit([admin_event(key, "account added", admin=int(args.admin))])
        print(f"added {'admin ' if args.admin else ''}account {name}")
        return 0
    found = await store.get_account(key)
    if found is None:
        raise ValueError(f"no account named {name}; 'bleeper user list' shows them")
    if action == "remove":
        await store.delete_account(key)
        await store.append_audit([admin_event(key, "account removed")])
        print(f"removed account {found.name}")
    elif action == "passwd":
        await store.set_password(key, hash_password(new_password(args.password_stdin)))
        await store.append_audit([admin_event(key, "password changed")])
        print(f"password changed for {found.name}")
    else:  # show
        waiting = await store.last_seq(key) - found.delivered_seq
        groups = sorted(name for name, members in (await store.load_groups()).values() if key in members)
        print(f"name:     {found.name}")
        print(f"admin:    {'yes' if found.admin else 'no'}")
        print(f"created:  {_when(found.created_ms)}")
        print(f"groups:   {', '.join(groups) or '-'}")
        print(f"waiting:  {max(0, waiting)} message(s) not yet delivered")
    return 0


def admin_event(account_key: str, action: str, **detail: str | int) -> AuditEvent:
    """An audit entry for something done with the admin tools, by the operating-system user who did it."""
    return AuditEvent(int(time.time() * 1000), "admin", f"cli:{getpass.getuser()}", account_key,
                      (("action", action), *sorted(detail.items())))  # fmt: skip


def _when(created_ms: int) -> str:
    return datetime.fromtimestamp(created_ms / 1000).strftime("%Y-%m-%d %H:%M")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "user",
        help="manage accounts (add, remove, passwd, list, show)",
        description="Manage accounts in the server's store. Works while the server runs; it sees changes within "
        "seconds. Passwords are asked for without echo, or read from standard input with --password-stdin.",
        epilog="Examples: bleeper user add dr.smith --admin;  echo 'secret pw' | bleeper user add bot --password-stdin",
    )
    add_store_arguments(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create an account", description="Create an account.")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="may use administrative commands")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    remove = actions.add_parser("remove", help="delete an account", description="Delete an account.")
    remove.add_argument("name")
    passwd = actions.add_parser("passwd", help="set a new password", description="Set a new password.")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    actions.add_parser("list", help="list accounts", description="List accounts.")
    show = actions.add_parser("show", help="show one account", description="Show one account.")
    show.add_argument("name")
    p.set_defaults(func=_user)


def _user(args: argparse.Namespace) -> int:
    from bleeper.framework.runner import run

    return run(run_user(args))
