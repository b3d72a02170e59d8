"""Passwords, signed result files, and the PostgreSQL roles and row security of a centre database.

Instructor password
-------------------
Stored only as an scrypt hash (``hashlib.scrypt``, memory-hard: n=2**15, r=8, p=1 uses 32 MiB and
about 0.1 s per guess; a random 16-byte salt per password), in the form
``scrypt$n$r$p$salt_b64$hash_b64``. scrypt rather than argon2id: both are memory-hard KDFs that
OWASP accepts, and scrypt is in the standard library, so no dependency is added for a password that
guards training results, not patient data. Verification compares in constant time.

Signed result files
-------------------
An exported attempt is signed with **Ed25519**, not an HMAC: an HMAC key per installation could
only be checked by the station that made it, and a key shared by every station would let any
station (or anyone who copies the key off one) forge results for all. Instead each installation
makes, at first use, a 32-byte random private key (``data_dir()/keys/station_ed25519.key``, mode
0600 in a 0700 folder, never in the repository). A result file carries the signature, the signer's
public key and its key id (the first 16 hex digits of the key's SHA-256). Import checks two things:

1. the signature matches the contents with the public key in the file: any change to the file after
   export (a score raised, a command removed) is rejected, naming the file;
2. the signing key is trusted: the station's own key always is; another station's key is trusted
   once an instructor adds it to the database's ``trusted_keys`` table (``Store.trust_key``, with
   the key shown by the other station). On a centre PostgreSQL database the list is shared by every
   station. A file signed by a key nobody trusted is rejected, naming the file and the key id.

What this does not prevent: whoever can read a station's key file can sign as that station. The
key file is readable by the operating-system account that runs SpineSim only, so trust the keys of
stations whose accounts trainees do not control.

PostgreSQL: row security enforced by the database
-------------------------------------------------
On a centre database every person connects with a login role of their own (the role's name is their
SpineSim account). Two group roles hold the privileges:

``spinesim_trainee``
    reads and writes attempts whose ``owner`` is ``current_user`` only (of an attempt, may change
    only its status, finish time, writer and counts), and their commands, events, scorecards and
    images (ROW LEVEL SECURITY policies ``USING (owner = current_user)`` on
    ``attempts`` and ``USING (EXISTS (SELECT 1 FROM attempts ...))`` on the child tables, whose
    subquery is itself filtered by the attempts policy); can add but never change or delete commands,
    events, scorecards and images; sees their own ``users`` row, their course memberships and those
    courses; has no privilege at all on ``credentials`` (instructor password hashes).
``spinesim_instructor``
    every row of every table (policies ``USING (true)``), including deleting.

A trainee who connects with their own login and types SQL gets the same rows as through the app: the
policies are in the server, keyed on the login, which the trainee cannot change (``SET ROLE`` to a
role they are not a member of is refused; ``current_user`` is not a setting). The tables belong to
the admin role that ran the setup, which is not subject to the policies: keep that login away from
stations.

Set up a centre database (as the centre's admin, e.g. the database owner)::

    from simulator.records.security import setup_centre_database, create_login
    setup_centre_database("postgresql://admin@dbhost/spinesim")    # schema, roles, grants, policies
    create_login("postgresql://admin@dbhost/spinesim", "jsmith", "J. Smith", "trainee",
                 password="...")                                  # a login role and a users row
    create_login(admin_url, "drlee", "Dr Lee", "instructor", password="...",
                 instructor_password="...")

``setup_centre_database`` is idempotent: run it again after each SpineSim upgrade (it upgrades the
schema to the version this SpineSim needs and re-applies the grants and policies to new tables).
Stations then use a URL with the person's own login, e.g. ``SPINESIM_DATABASE_URL=
postgresql://jsmith@dbhost/spinesim`` with the password in ``~/.pgpass``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import tempfile
from pathlib import Path

from simulator.errors import SpineSimError

# ----------------------------------------------------------------------------------- passwords
#: scrypt cost: n=2**15, r=8 needs 128 * r * n = 32 MiB per hash (memory-hard), p=1.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_SALT_BYTES = 16
SCRYPT_HASH_BYTES = 32
#: hashlib refuses more than maxmem bytes: room for the 32 MiB the parameters above need.
_SCRYPT_MAXMEM_BYTES = 128 * 2**20
#: The shortest instructor password accepted, characters.
MIN_PASSWORD_CHARS = 8


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """An scrypt hash of ``password`` with a random salt: ``scrypt$n$r$p$salt$hash`` (base64).

    Parameters
    ----------
    password : str
        At least :data:`MIN_PASSWORD_CHARS` characters.

    Returns
    -------
    str
        The text to store; it never contains the password.
    """
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise SpineSimError(f"instructor password: must have at least {MIN_PASSWORD_CHARS} characters")
    salt = secrets.token_bytes(SCRYPT_SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=_SCRYPT_MAXMEM_BYTES, dklen=SCRYPT_HASH_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password` (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(str(password).encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r),
                             p=int(p), maxmem=_SCRYPT_MAXMEM_BYTES, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


# -------------------------------------------------------------------------------- station key
#: What a signature covers: this prefix and the canonical JSON of the file's attempt (the prefix
#: keeps a signature over a result from meaning anything else).
SIGNING_CONTEXT = b"spinesim-result-v1\n"
KEY_FILE_NAME = "station_ed25519.key"


def station_key_path() -> Path:
    """Where this installation's private signing key lives (in the user's data folder)."""
    from simulator.paths import data_dir

    return data_dir() / "keys" / KEY_FILE_NAME


def load_station_key(path: str | Path | None = None):
    """This installation's Ed25519 private key, made at first use (32 random bytes, mode 0600).

    Parameters
    ----------
    path : path, optional
        Default :func:`station_key_path`.

    Returns
    -------
    cryptography.hazmat.primitives.asymmetric.ed25519.Ed25519PrivateKey
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path) if path is not None else station_key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # written whole to a private temporary file, then linked in: two processes starting at once
        # end up with one key, and nobody ever reads a half-written one
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
        try:
            os.chmod(tmp, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            except OSError:
                # a file system without hard links: a rename (the rare race then keeps the last key)
                os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    if os.name == "posix" and path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # a copied key file keeps no group/other access
    seed = path.read_bytes()
    if len(seed) != 32:
        raise SpineSimError(f"{path}: not a station key (must be 32 bytes; delete it to make a new one)")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_hex(private_key) -> str:
    """The raw public key of ``private_key`` as 64 hex digits."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def key_id(public_hex: str) -> str:
    """A short name of a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:16]


def check_public_key_hex(text: str, what: str = "public key") -> str:
    """``text`` as 64 lowercase hex digits, or a one-line error naming ``what``."""
    t = str(text).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", t):
        raise SpineSimError(f"{what}: must be 64 hex digits (an Ed25519 public key)")
    return t


def _finite(obj):
    """``obj`` with non-finite floats as None: JSON has no NaN or infinity, and PostgreSQL's JSON
    refuses them."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def canonical_json(obj) -> bytes:
    """One byte string per JSON value: sorted keys, no spaces, UTF-8 (what is signed)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def sign(attempt: dict, private_key) -> dict:
    """The ``signature`` object of a result file whose ``attempt`` is ``attempt``."""
    pub = public_key_hex(private_key)
    value = private_key.sign(SIGNING_CONTEXT + canonical_json(attempt))
    return {"algorithm": "ed25519", "key_id": key_id(pub), "public_key": pub, "value": _b64(value)}


def verify(attempt, signature, where: str) -> str:
    """Check a result file's signature against its ``attempt``; returns the signer's public key hex.

    Raises :class:`SpineSimError` naming ``where`` (the file) when the signature is missing,
    malformed or does not match.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(signature, dict) or signature.get("algorithm") != "ed25519":
        raise SpineSimError(f"{where}: signature: missing or not an Ed25519 signature")
    try:
        pub = check_public_key_hex(signature.get("public_key", ""))
        value = base64.b64decode(str(signature.get("value", "")), validate=True)
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(pub))
        key.verify(value, SIGNING_CONTEXT + canonical_json(attempt))
    except (SpineSimError, ValueError, InvalidSignature, TypeError):
        raise SpineSimError(f"{where}: signature does not match the contents: the file was changed after "
                            "it was exported (or is damaged)") from None
    if signature.get("key_id") != key_id(pub):
        raise SpineSimError(f"{where}: signature: key_id does not match its public key")
    return pub


# -------------------------------------------------------------------------- PostgreSQL centre
TRAINEE_GROUP = "spinesim_trainee"
INSTRUCTOR_GROUP = "spinesim_instructor"
GROUPS = {"trainee": TRAINEE_GROUP, "instructor": INSTRUCTOR_GROUP}

_OWN_ATTEMPT = "EXISTS (SELECT 1 FROM attempts a WHERE a.id = {table}.attempt_id)"
#: Row policies of the trainee group, by table (``None``: no row security on that table).
_TRAINEE_POLICIES = {
    "attempts": "owner = current_user",
    "attempt_commands": _OWN_ATTEMPT.format(table="attempt_commands"),
    "attempt_events": _OWN_ATTEMPT.format(table="attempt_events"),
    "scorecards": _OWN_ATTEMPT.format(table="scorecards"),
    "attempt_images": _OWN_ATTEMPT.format(table="attempt_images"),
    "users": "account = current_user",
    "course_members": "EXISTS (SELECT 1 FROM users u WHERE u.id = course_members.user_id)",
    "courses": "EXISTS (SELECT 1 FROM course_members m WHERE m.course_id = courses.id)",
    "course_scenarios": "EXISTS (SELECT 1 FROM courses c WHERE c.id = course_scenarios.course_id)",
}
#: Table privileges of the trainee group (none on credentials). A trainee's own attempt changes
#: only in what writing it needs (status, counts, writer): never its owner, header or times.
_TRAINEE_GRANTS = {
    "attempts": "SELECT, INSERT, UPDATE (status, finished_at, writer_id, n_commands, n_events)",
    "attempt_commands": "SELECT, INSERT",
    "attempt_events": "SELECT, INSERT",
    "scorecards": "SELECT, INSERT",
    "attempt_images": "SELECT, INSERT",
    "users": "SELECT",
    "course_members": "SELECT",
    "courses": "SELECT",
    "course_scenarios": "SELECT",
    "writers": "SELECT, INSERT, UPDATE (ended_at)",
    "trusted_keys": "SELECT",
    "alembic_version": "SELECT",
}


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _admin_store(admin_url: str):
    from simulator.records.store import Store

    store = Store.open(admin_url)
    if store.backend != "postgresql":
        store.close()
        raise SpineSimError(f"database {store.url}: roles and row security are for PostgreSQL only")
    return store


def setup_centre_database(admin_url: str) -> None:
    """Make a PostgreSQL database a centre database: schema at head, the two group roles, their
    grants and the row-security policies (idempotent; run again after every SpineSim upgrade).

    Parameters
    ----------
    admin_url : str
        A URL of the database's owner (or a superuser), never a station's URL.
    """
    from sqlalchemy import text

    store = _admin_store(admin_url)
    try:
        with store.engine.begin() as conn:
            db = conn.execute(text("SELECT current_database()")).scalar_one()
            # the roles are cluster-wide: two centre databases on one server share them
            for group in GROUPS.values():
                conn.execute(text(f"""DO $$ BEGIN
                    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{group}') THEN
                        CREATE ROLE {group} NOLOGIN;
                    END IF; END $$"""))
            groups = ", ".join(GROUPS.values())
            conn.execute(text(f"GRANT CONNECT ON DATABASE {_quote_ident(db)} TO {groups}"))
            # nobody but the admin creates objects (older servers let PUBLIC create in public)
            conn.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
            conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {groups}"))
            conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, {groups}"))
            conn.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {groups}"))
            conn.execute(text("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                              f"TO {INSTRUCTOR_GROUP}"))
            conn.execute(text(f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {INSTRUCTOR_GROUP}"))
            for table, privileges in _TRAINEE_GRANTS.items():
                conn.execute(text(f"GRANT {privileges} ON {table} TO {TRAINEE_GROUP}"))
            for table, using in _TRAINEE_POLICIES.items():
                conn.execute(text(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
                conn.execute(text(f"DROP POLICY IF EXISTS spinesim_trainee_own ON {table}"))
                conn.execute(text(f"DROP POLICY IF EXISTS spinesim_instructor_all ON {table}"))
                conn.execute(text(f"CREATE POLICY spinesim_trainee_own ON {table} TO {TRAINEE_GROUP} "
                                  f"USING ({using}) WITH CHECK ({using})"))
                conn.execute(text(f"CREATE POLICY spinesim_instructor_all ON {table} TO {INSTRUCTOR_GROUP} "
                                  "USING (true) WITH CHECK (true)"))
    finally:
        store.close()


def create_login(admin_url: str, account: str, display_name: str, role: str, password: str,
                 instructor_password: str | None = None) -> None:
    """A person's PostgreSQL login role (in the trainee or instructor group) and their ``users`` row.

    Parameters
    ----------
    admin_url : str
        The centre admin's URL (a role allowed to create roles).
    account : str
        The person's account: also the login role's name.
    display_name : str
    role : {"trainee", "instructor"}
    password : str
        The login's database password (sent to the server as a SCRAM verifier, never in clear).
    instructor_password : str, optional
        An instructor's SpineSim instructor password (stored as an scrypt hash).
    """
    from sqlalchemy import text

    from simulator.records.store import check_account

    account = check_account(account)
    if role not in GROUPS:
        raise SpineSimError(f"role: must be one of {', '.join(GROUPS)} (not {role!r})")
    store = _admin_store(admin_url)
    try:
        with store.engine.begin() as conn:
            pgconn = conn.connection.driver_connection.pgconn
            verifier = pgconn.encrypt_password(password.encode("utf-8"), account.encode("utf-8"),
                                               b"scram-sha-256").decode("ascii")
            exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": account}).first()
            verb = "ALTER" if exists else "CREATE"
            conn.exec_driver_sql(f"{verb} ROLE {_quote_ident(account)} LOGIN PASSWORD '{verifier}'")
            other = GROUPS["trainee" if role == "instructor" else "instructor"]
            conn.exec_driver_sql(f"REVOKE {other} FROM {_quote_ident(account)}")
            conn.exec_driver_sql(f"GRANT {GROUPS[role]} TO {_quote_ident(account)}")
        store.put_user_unchecked(account, display_name, role, instructor_password)
    finally:
        store.close()


def drop_login(admin_url: str, account: str) -> None:
    """Remove a person's login role (their ``users`` row and attempts stay)."""
    from simulator.records.store import check_account

    account = check_account(account)
    store = _admin_store(admin_url)
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {_quote_ident(account)}")
    finally:
        store.close()
