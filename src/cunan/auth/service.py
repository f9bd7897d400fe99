"""Logins, server-side sessions, password changes, user administration and API tokens."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import inspect

from cunan.audit.log import AuditAction, AuditLog
from cunan.auth.throttle import LoginThrottle
from cunan.authz import Permission, Principal, require
from cunan.config import WebSettings
from cunan.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated, Unavailable
from cunan.registry.accounts import check_password_strength
from cunan.storage.auth_repository import AuthRepository
from cunan.storage.auth_tables import ApiToken, AuthSession
from cunan.storage.database import Database, WriterBusyError
from cunan.storage.enums import UserRole
from cunan.storage.tables import User
from cunan.storage.write_cache import attribute_changed, table_of, watch_writes

logger = logging.getLogger(__name__)

#: Prefix of API tokens, so a leaked one is recognisable in logs and secret scanners.
TOKEN_PREFIX = "cunan_"
#: How often a session's "last seen" is written: not on every request (each write takes
#: SQLite's single write lock), but often enough for the idle timeout to be exact to it.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)
#: How long a session checked against the database is trusted without reading it again
#: (every request needs its caller). A logout, a disabled account, a password change or
#: reset and a landlord link changed in this process drop every trusted session at commit;
#: only a change made by another process (the command line) waits up to this long.
SESSION_TRUST_S = 5.0
#: A "last seen" time not yet written (the writer was busy) is written, waiting for the
#: writer if need be, once the oldest one waits this long.
LAST_SEEN_MAX_DELAY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class _Trusted:
    principal: Principal
    expires_at: datetime
    last_seen_at: datetime
    #: ``time.monotonic()`` when the database said it was live.
    checked: float


def _changes_sessions(obj: object, new: bool) -> bool:
    """Whether a write may end a live session or change who holds it."""
    table = table_of(obj)
    if table == "auth_sessions":
        return not new and (_is_deleted(obj) or attribute_changed(obj, "revoked_at"))
    if table == "users":
        return not new
    if table == "landlords":
        return new or _is_deleted(obj) or attribute_changed(obj, "user_id")
    return False


def _is_deleted(obj: object) -> bool:
    state = inspect(obj)
    return bool(state.deleted or state.was_deleted)


def token_hash(secret: str) -> str:
    """SHA-256 of a session or API token: what the database keeps instead of the secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class LoginLockedError(Forbidden):
    """Too many failed logins for this account or from this address; try again later."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class HashingBusyError(Unavailable):
    """Every password-hashing slot stayed busy while this request waited: try again soon
    (503 with Retry-After; nothing was checked or changed)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    principal: Principal
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UserSummary:
    id: int
    username: str
    role: UserRole
    display_name: str | None
    village_id: int | None
    landlord_id: int | None
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TokenSummary:
    id: int
    name: str
    role: UserRole
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuthService:
    """Everything about who is logged in. Password hashing (deliberately slow) always runs
    outside the write transaction, so a login never holds SQLite's writer for its hash."""

    def __init__(
        self,
        database: Database,
        audit: AuditLog,
        settings: WebSettings,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] = _utcnow,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.database = database
        self.audit = audit
        self.settings = settings
        self._hasher = hasher or PasswordHasher()
        self._clock = clock
        self.throttle = throttle or LoginThrottle(
            max_per_account=settings.login_max_failures_per_account,
            max_per_client=settings.login_max_failures_per_client,
            window_s=settings.login_window_minutes * 60.0,
        )
        # A hash to verify against when the username does not exist, so the time a failed
        # login takes does not tell which usernames exist.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        # At most this many argon2 computations at once (see WebSettings.login_hash_slots).
        self.hash_slots = settings.login_hash_slots or os.cpu_count() or 1
        self._hash_slots = threading.BoundedSemaphore(self.hash_slots)
        # Sessions recently checked, by token hash; emptied when a write may end one.
        self._trusted: dict[str, _Trusted] = {}
        self._trust_lock = threading.Lock()
        self._trust_generation = 0
        # "Last seen" times not written yet (by session id): a request never waits for the
        # writer lock (case grouping, imports) just to record that its session is in use.
        self._seen: dict[int, datetime] = {}
        self._seen_lock = threading.Lock()
        watch_writes(
            database,
            changes=_changes_sessions,
            statement_tables=frozenset({"auth_sessions", "users", "landlords"}),
            on_commit=self.forget_sessions,
        )

    # -- logins and sessions ----------------------------------------------------------------

    def login(self, username: str, password: str, *, client: str) -> LoginResult:
        """A new session for the right password; :class:`Unauthenticated` otherwise."""
        username = username.strip()
        locked = self.throttle.locked(username, client)
        if locked is not None:
            if self.throttle.first_refusal(username, client):
                self._record("login.locked", actor="anonymous", details={"scope": locked})
            raise LoginLockedError(
                "登录失败次数过多，请稍后再试 (too many failed logins; try again later)",
                self.throttle.retry_after_s(username, client),
            )
        with self.database.read() as session:
            user = AuthRepository(session).user_by_name(username)
            stored = (user.id, user.password_hash, user.disabled_at) if user else None
        ok = self._verify(stored[1] if stored else self._dummy_hash, password)
        if stored is None or not ok or stored[2] is not None:
            self.throttle.failed(username, client)
            reason = "unknown_user" if stored is None else "disabled" if ok else "bad_password"
            self._record(
                AuditAction.LOGIN_FAILED,
                actor="anonymous",
                target_id=None if stored is None else stored[0],
                details={"reason": reason},
            )
            raise Unauthenticated("用户名或密码错误 (wrong username or password)")
        user_id = stored[0]
        self.throttle.succeeded(username)
        rehash = self._hash(password) if self._hasher.check_needs_rehash(stored[1]) else None
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        expires = now + timedelta(hours=self.settings.session_absolute_hours)
        with self.database.transaction() as session:
            repo = AuthRepository(session)
            row = repo.user(user_id)
            if row is None or row.disabled_at is not None:
                raise Unauthenticated("用户名或密码错误 (wrong username or password)")
            if rehash is not None:
                row.password_hash = rehash
            repo.add(
                AuthSession(
                    token_hash=token_hash(secret),
                    user_id=user_id,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires,
                    client=client[:64],
                )
            )
            principal = self._principal(repo, row)
            self.audit.record(
                AuditAction.LOGIN,
                actor=principal.actor,
                target_type="user",
                target_id=user_id,
                session=session,
            )
        return LoginResult(token=secret, principal=principal, expires_at=expires)

    def forget_sessions(self) -> None:
        """Check every session against the database again on its next request."""
        with self._trust_lock:
            self._trust_generation += 1
            self._trusted.clear()

    def principal_for_session(self, secret: str) -> Principal:
        """Who holds this session token; :class:`Unauthenticated` if it is not a live one.

        A session checked moments ago (:data:`SESSION_TRUST_S`) is not read again, as long
        as its expiry, idle time and "last seen" refresh do not fall due meanwhile."""
        now = self._clock()
        idle = timedelta(minutes=self.settings.session_idle_minutes)
        key = token_hash(secret)
        with self._trust_lock:
            generation = self._trust_generation
        known = self._trusted_now(key, now)
        if known is not None:
            return known
        checked = time.monotonic()
        with self.database.read() as session:
            repo = AuthRepository(session)
            row = repo.session_by_hash(key)
            user = repo.user(row.user_id) if row is not None else None
            # Seen later than the database says when that time is still to be written.
            last_seen_at = row.last_seen_at if row is not None else now
            if row is not None:
                with self._seen_lock:
                    last_seen_at = max(last_seen_at, self._seen.get(row.id, last_seen_at))
            if (
                row is None
                or user is None
                or row.revoked_at is not None
                or user.disabled_at is not None
                or row.expires_at <= now
                or last_seen_at + idle <= now
            ):
                raise Unauthenticated("会话已过期，请重新登录 (session expired; log in again)")
            principal = self._principal(repo, user)
            stale = last_seen_at + LAST_SEEN_RESOLUTION <= now
            session_id = row.id
            expires_at = row.expires_at
        if stale:
            self._note_seen(session_id, now)
            last_seen_at = now
        with self._trust_lock:
            # Not if a write that may end sessions committed since the read began: that
            # read may predate it.
            if generation == self._trust_generation:
                self._trusted[key] = _Trusted(principal, expires_at, last_seen_at, checked)
        return principal

    def trusted_principal(self, secret: str) -> Principal | None:
        """Who holds this session if it was checked moments ago and nothing about it fell
        due since (no database access: callers on an event loop may ask); None: ask
        :meth:`principal_for_session`."""
        return self._trusted_now(token_hash(secret), self._clock())

    def _trusted_now(self, key: str, now: datetime) -> Principal | None:
        idle = timedelta(minutes=self.settings.session_idle_minutes)
        with self._trust_lock:
            trusted = self._trusted.get(key)
        if (
            trusted is not None
            and time.monotonic() - trusted.checked < SESSION_TRUST_S
            and now < trusted.expires_at
            and now < trusted.last_seen_at + idle
            and now < trusted.last_seen_at + LAST_SEEN_RESOLUTION
        ):
            return trusted.principal
        return None

    def _note_seen(self, session_id: int, now: datetime) -> None:
        """Record that the session was used ``now``: written with any others waiting, at
        once if no other thread is writing, else by a later request (or at the latest when
        the oldest waited :data:`LAST_SEEN_MAX_DELAY`)."""
        with self._seen_lock:
            self._seen[session_id] = max(now, self._seen.get(session_id, now))
            oldest = min(self._seen.values())
        self.flush_seen(wait=now - oldest >= LAST_SEEN_MAX_DELAY)

    def flush_seen(self, *, wait: bool = True) -> None:
        """Write the "last seen" times not written yet (``wait=False``: only if no other
        thread of this process is writing now)."""
        with self._seen_lock:
            if not self._seen:
                return
            pending, self._seen = self._seen, {}
        try:
            with self.database.transaction(wait=wait) as session:
                AuthRepository(session).touch_sessions(pending)
        except BaseException as exc:
            with self._seen_lock:
                # Kept for the next attempt (a later time noted meanwhile wins).
                for session_id, at in pending.items():
                    self._seen[session_id] = max(at, self._seen.get(session_id, at))
            if not isinstance(exc, WriterBusyError):
                raise

    def logout(self, secret: str) -> None:
        """End the session (idempotent: an unknown or ended token is no error)."""
        with self.database.transaction() as session:
            row = AuthRepository(session).session_by_hash(token_hash(secret))
            if row is None or row.revoked_at is not None:
                return
            row.revoked_at = self._clock()
            self.audit.record(
                AuditAction.LOGOUT,
                actor=f"user:{row.user_id}",
                target_type="user",
                target_id=row.user_id,
                session=session,
            )

    def change_password(self, principal: Principal, old: str, new: str) -> None:
        """The caller's own password; every session of theirs ends, this one included (a
        stolen session must not outlive the password it was opened with)."""
        require(principal, Permission.OWN_ACCOUNT)
        if principal.user_id is None:
            raise InvalidInput("only accounts have passwords")
        with self.database.read() as session:
            user = AuthRepository(session).user(principal.user_id)
            stored = user.password_hash if user else None
        if stored is None or not self._verify(stored, old):
            raise InvalidInput("当前密码不正确 (the current password is wrong)")
        check_password_strength(new)
        new_hash = self._hash(new)
        with self.database.transaction() as session:
            repo = AuthRepository(session)
            row = repo.user(principal.user_id)
            if row is None:
                raise NotFound(f"user {principal.user_id} not found")
            row.password_hash = new_hash
            repo.revoke_sessions_of(row.id, self._clock())
            self.audit.record(
                "user.password_change",
                actor=principal.actor,
                target_type="user",
                target_id=row.id,
                session=session,
            )

    # -- user administration ------------------------------------------------------------------

    def create_user(
        self,
        principal: Principal,
        username: str,
        password: str,
        role: UserRole,
        *,
        display_name: str | None = None,
        village_id: int | None = None,
        landlord_id: int | None = None,
    ) -> UserSummary:
        require(principal, Permission.MANAGE_USERS)
        username = username.strip()
        if not username or len(username) > 100:
            raise InvalidInput("用户名须为 1-100 个字符 (username must be 1-100 characters)")
        if display_name is not None and len(display_name) > 200:
            raise InvalidInput("显示名称过长 (display name longer than 200 characters)")
        if landlord_id is not None and role is not UserRole.LANDLORD:
            raise InvalidInput("only landlord accounts link to a landlord record")
        # Hashed before the write transaction: argon2 is slow on purpose.
        password_hash = self._password_hash(password)
        from cunan.storage.tables import Landlord

        with self.database.transaction() as session:
            repo = AuthRepository(session)
            user = self._insert_user(
                repo,
                username,
                password_hash,
                role,
                display_name=display_name,
                village_id=village_id if village_id is not None else principal.village_id,
            )
            if landlord_id is not None:
                landlord = session.get(Landlord, landlord_id)
                if landlord is None:
                    raise NotFound(f"landlord {landlord_id} not found")
                if landlord.user_id is not None:
                    raise Conflict(f"landlord {landlord_id} already has an account")
                landlord.user_id = user.id
                session.flush()
            self.audit.record(
                AuditAction.USER_CREATE,
                actor=principal.actor,
                target_type="user",
                target_id=user.id,
                details={"role": role.value, "landlord_id": landlord_id},
                session=session,
            )
            return self._summary(repo, user)

    def list_users(
        self, principal: Principal, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[UserSummary], int]:
        require(principal, Permission.MANAGE_USERS)
        with self.database.read() as session:
            repo = AuthRepository(session)
            rows, total = repo.users(offset=offset, limit=limit)
            return [self._summary(repo, u) for u in rows], total

    def get_user(self, principal: Principal, user_id: int) -> UserSummary:
        if principal.user_id is None or principal.user_id != user_id:
            require(principal, Permission.MANAGE_USERS)
        with self.database.read() as session:
            repo = AuthRepository(session)
            user = repo.user(user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            return self._summary(repo, user)

    def user_id_of(self, principal: Principal, key: str) -> int:
        """The id of an account given by id or username."""
        require(principal, Permission.MANAGE_USERS)
        return self.account_id(key)

    def account_id(self, key: str) -> int:
        """The id of an account given by id or username (the caller checks the right to
        name accounts: managing users, or assigning a case to someone)."""
        if key.strip().isdigit():
            return int(key)
        with self.database.read() as session:
            user = AuthRepository(session).user_by_name(key.strip())
        if user is None:
            raise NotFound(f"user {key} not found")
        return user.id

    def set_disabled(self, principal: Principal, user_id: int, disabled: bool) -> UserSummary:
        """Disable (every session ends at once) or re-enable an account."""
        require(principal, Permission.MANAGE_USERS)
        with self.database.transaction() as session:
            repo = AuthRepository(session)
            user = repo.user(user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            if disabled and user.role is UserRole.ADMIN and repo.count_admins() <= 1:
                raise Conflict("不能停用最后一个管理员 (cannot disable the last admin)")
            now = self._clock()
            user.disabled_at = now if disabled else None
            if disabled:
                repo.revoke_sessions_of(user.id, now)
            self.audit.record(
                "user.disable" if disabled else "user.enable",
                actor=principal.actor,
                target_type="user",
                target_id=user.id,
                session=session,
            )
            return self._summary(repo, user)

    def reset_password(self, principal: Principal, user_id: int, new: str) -> None:
        """An administrator sets a new password; the user's sessions end."""
        require(principal, Permission.MANAGE_USERS)
        check_password_strength(new)
        new_hash = self._hash(new)
        with self.database.transaction() as session:
            repo = AuthRepository(session)
            user = repo.user(user_id)
            if user is None:
                raise NotFound(f"user {user_id} not found")
            user.password_hash = new_hash
            repo.revoke_sessions_of(user.id, self._clock())
            self.audit.record(
                "user.password_reset",
                actor=principal.actor,
                target_type="user",
                target_id=user.id,
                session=session,
            )

    def needs_setup(self) -> bool:
        """True while no enabled administrator exists (first run)."""
        with self.database.read() as session:
            return AuthRepository(session).count_admins() == 0

    def setup_admin(
        self, username: str, password: str, *, village_id: int | None, actor: str = "setup"
    ) -> int:
        """Create the first administrator (the set-up page, or ``cunan init`` as ``actor``);
        refused once one exists."""
        username = username.strip()
        if not username or len(username) > 100:
            raise InvalidInput("用户名须为 1-100 个字符 (username must be 1-100 characters)")
        password_hash = self._password_hash(password)
        with self.database.transaction() as session:
            repo = AuthRepository(session)
            if repo.count_admins():
                raise Conflict("已设置管理员 (an administrator already exists)")
            user = self._insert_user(
                repo, username, password_hash, UserRole.ADMIN, village_id=village_id
            )
            self.audit.record(
                AuditAction.USER_CREATE,
                actor=actor,
                target_type="user",
                target_id=user.id,
                details={"role": UserRole.ADMIN.value, "first_run": True},
                session=session,
            )
            return user.id

    # -- API tokens -------------------------------------------------------------------------

    def create_token(
        self, principal: Principal, name: str, role: UserRole
    ) -> tuple[TokenSummary, str]:
        """A new integration token (shown once); only its hash is stored."""
        require(principal, Permission.MANAGE_USERS)
        name = name.strip()
        if not name or len(name) > 100:
            raise InvalidInput("令牌名称须为 1-100 个字符 (token name must be 1-100 characters)")
        if role in (UserRole.LANDLORD, UserRole.BUSINESS, UserRole.MAINTAINER):
            # Their scope is their own account (its landlord record or gas contacts); a token
            # has no account, so it would see nothing at all.
            raise InvalidInput(
                f"不支持 {role.value} 角色的令牌：此类用户请自行登录 "
                f"({role.value} tokens are not supported: such users log in themselves)"
            )
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.database.transaction() as session:
            row = ApiToken(
                name=name,
                token_hash=token_hash(secret),
                role=role,
                village_id=principal.village_id,
                created_by=principal.actor,
                created_at=self._clock(),
            )
            AuthRepository(session).add(row)
            self.audit.record(
                "token.create",
                actor=principal.actor,
                target_type="api_token",
                target_id=row.id,
                details={"role": role.value},
                session=session,
            )
            return _token_summary(row), secret

    def list_tokens(self, principal: Principal) -> list[TokenSummary]:
        require(principal, Permission.MANAGE_USERS)
        with self.database.read() as session:
            return [_token_summary(t) for t in AuthRepository(session).tokens()]

    def revoke_token(self, principal: Principal, token_id: int) -> None:
        require(principal, Permission.MANAGE_USERS)
        with self.database.transaction() as session:
            row = AuthRepository(session).token(token_id)
            if row is None:
                raise NotFound(f"api token {token_id} not found")
            if row.revoked_at is None:
                row.revoked_at = self._clock()
                self.audit.record(
                    "token.revoke",
                    actor=principal.actor,
                    target_type="api_token",
                    target_id=row.id,
                    session=session,
                )

    def principal_for_token(self, secret: str) -> Principal:
        with self.database.read() as session:
            row = AuthRepository(session).token_by_hash(token_hash(secret))
            if row is None or row.revoked_at is not None:
                raise Unauthenticated("API 令牌无效或已撤销 (invalid or revoked API token)")
            principal = Principal(
                username=f"token:{row.name}",
                role=row.role,
                # Token ids are not account ids: "own account" paths never apply to a token.
                user_id=None,
                token_id=row.id,
                village_id=row.village_id,
                via="token",
            )
            stale = row.last_used_at is None or row.last_used_at + LAST_SEEN_RESOLUTION <= (
                self._clock()
            )
            token_id = row.id
        if stale:
            with self.database.transaction() as session:
                live = AuthRepository(session).token(token_id)
                if live is not None:
                    live.last_used_at = self._clock()
        return principal

    # -- helpers ------------------------------------------------------------------------------

    def _password_hash(self, password: str) -> str:
        check_password_strength(password)
        return self._hash(password)

    def _insert_user(
        self,
        repo: AuthRepository,
        username: str,
        password_hash: str,
        role: UserRole,
        *,
        display_name: str | None = None,
        village_id: int | None = None,
    ) -> User:
        """The one place an account row is written (names are unique)."""
        if repo.user_by_name(username) is not None:
            raise Conflict(f"用户 {username} 已存在 (user already exists)")
        user = User(
            username=username,
            display_name=display_name,
            role=role,
            password_hash=password_hash,
            village_id=village_id,
            created_at=self._clock(),
        )
        repo.add(user)
        return user

    def count_users(self) -> int:
        with self.database.read() as session:
            return AuthRepository(session).users(offset=0, limit=1)[1]

    @contextmanager
    def _hashing(self) -> Iterator[None]:
        """One of the bounded hashing slots, waited for briefly; :class:`HashingBusyError`
        when none frees up in time (then nothing was checked, and no failure counted)."""
        wait = self.settings.login_hash_wait_s
        if not self._hash_slots.acquire(timeout=wait):
            logger.info(
                "password hashing busy (%d slots): a request was turned away", self.hash_slots
            )
            raise HashingBusyError(
                "服务器正忙，请几秒后再试 (the server is busy checking other passwords; try "
                "again in a few seconds)",
                retry_after_s=max(1.0, wait),
            )
        try:
            yield
        finally:
            self._hash_slots.release()

    def _hash(self, password: str) -> str:
        with self._hashing():
            return self._hasher.hash(password)

    def _verify(self, stored_hash: str, password: str) -> bool:
        with self._hashing():
            try:
                return bool(self._hasher.verify(stored_hash, password))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

    def _record(
        self,
        action: str,
        *,
        actor: str,
        target_id: int | None = None,
        details: dict[str, str | int | None] | None = None,
    ) -> None:
        self.audit.record(
            action,
            actor=actor,
            target_type="user" if target_id is not None else None,
            target_id=target_id,
            details=details,
        )

    @staticmethod
    def _principal(repo: AuthRepository, user: User) -> Principal:
        return Principal(
            username=user.username,
            role=user.role,
            user_id=user.id,
            village_id=user.village_id,
            landlord_id=(
                repo.landlord_id_of_user(user.id) if user.role is UserRole.LANDLORD else None
            ),
        )

    @staticmethod
    def _summary(repo: AuthRepository, user: User) -> UserSummary:
        return UserSummary(
            id=user.id,
            username=user.username,
            role=user.role,
            display_name=user.display_name,
            village_id=user.village_id,
            landlord_id=repo.landlord_id_of_user(user.id),
            disabled=user.disabled_at is not None,
            created_at=user.created_at,
        )


def _token_summary(row: ApiToken) -> TokenSummary:
    return TokenSummary(
        id=row.id,
        name=row.name,
        role=row.role,
        created_by=row.created_by,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked=row.revoked_at is not None,
    )
