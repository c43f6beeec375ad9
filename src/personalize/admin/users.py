"""Admin accounts: hashed passwords (scrypt via werkzeug) and roles."""

from __future__ import annotations

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from ..db import db
from ..models import AdminUser, utcnow

ROLES = ("owner", "editor", "viewer")
MIN_PASSWORD = 10


class AdminUserError(ValueError):
    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def create_admin_user(email: str, password: str, role: str = "owner") -> AdminUser:
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 320:
        raise AdminUserError("email", "enter an email address")
    if role not in ROLES:
        raise AdminUserError("role", f"role must be one of {', '.join(ROLES)}")
    if len(password or "") < MIN_PASSWORD:
        raise AdminUserError("password", f"a password needs at least {MIN_PASSWORD} characters")
    if get_admin_user(email) is not None:
        raise AdminUserError("email", f"{email} has an account already")
    user = AdminUser(email=email, password_hash=generate_password_hash(password), role=role)
    db.session.add(user)
    db.session.commit()
    return user


def get_admin_user(email: str) -> AdminUser | None:
    return db.session.scalar(select(AdminUser).where(AdminUser.email == (email or "").strip().lower()))


def authenticate(email: str, password: str) -> AdminUser | None:
    """The user if the password is right; the same work is done for unknown emails."""
    user = get_admin_user(email)
    if user is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or ""):
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def count_admin_users() -> int:
    return db.session.scalar(select(func.count()).select_from(AdminUser)) or 0


_DUMMY_HASH = generate_password_hash("not a real password")


def list_admin_users() -> list[AdminUser]:
    return list(db.session.scalars(select(AdminUser).order_by(AdminUser.email)))


def count_owners() -> int:
    return db.session.scalar(select(func.count()).select_from(AdminUser).where(AdminUser.role == "owner")) or 0


def change_password(user: AdminUser, current: str, new: str) -> None:
    """Set a new password after checking the current one."""
    if not check_password_hash(user.password_hash, current or ""):
        raise AdminUserError("current_password", "the current password is wrong")
    if len(new or "") < MIN_PASSWORD:
        raise AdminUserError("new_password", f"a password needs at least {MIN_PASSWORD} characters")
    user.password_hash = generate_password_hash(new)
    db.session.commit()


def set_role(user: AdminUser, role: str) -> None:
    """Change a user's role; the last owner keeps theirs."""
    if role not in ROLES:
        raise AdminUserError("role", f"role must be one of {', '.join(ROLES)}")
    if user.role == "owner" and role != "owner" and count_owners() <= 1:
        raise AdminUserError("role", "the last owner cannot stop being an owner; make someone else an owner first")
    user.role = role
    db.session.commit()


def remove_admin_user(user: AdminUser) -> None:
    """Delete an account; the last owner cannot be removed."""
    if user.role == "owner" and count_owners() <= 1:
        raise AdminUserError("user", "the last owner cannot be removed")
    db.session.delete(user)
    db.session.commit()
