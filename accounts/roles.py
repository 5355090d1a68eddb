"""The ten built-in roles, with exactly the permissions the seeds give them.

seed 000: admin, user, viewer. seed 004: platform_admin, service_owner, financial_controller,
ml_engineer, test_engineer, operator, analyst. A data migration writes them; changing a built-in
role here needs a new migration.
"""

BUILTIN_ROLES: dict[str, dict] = {
    "admin": {"permissions": ["*"], "description": "All permissions"},
    "user": {
        "permissions": ["read:projects", "write:projects", "start:training", "view:metrics"],
        "description": "Works on their own projects and starts training",
    },
    "viewer": {"permissions": ["read:projects", "view:metrics"], "description": "Reads projects and metrics"},
    "platform_admin": {"permissions": ["*"], "description": "Full platform administration"},
    "service_owner": {
        "permissions": ["service:*", "budget:read", "monitoring:*"],
        "description": "Service management and monitoring",
    },
    "financial_controller": {
        "permissions": ["budget:*", "approval:*", "report:*"],
        "description": "Financial management and approvals",
    },
    "ml_engineer": {
        "permissions": ["client:*", "execution:*", "model:*", "test:write"],
        "description": "ML operations and training",
    },
    "test_engineer": {
        "permissions": ["test:*", "report:write", "monitoring:read"],
        "description": "Testing and quality assurance",
    },
    "operator": {
        "permissions": ["service:read", "monitoring:*", "alert:*", "log:read"],
        "description": "Operations and monitoring",
    },
    "analyst": {
        "permissions": ["report:read", "chart:read", "metric:read", "log:read"],
        "description": "Analytics and reporting",
    },
}

DEFAULT_ROLE = "user"

# Scopes a device's API key may carry (seed 002) besides permission strings.
DEVICE_SCOPES = ("client:register", "training:participate", "model:download")

# Permissions for managing identity itself (seed 001 admin scopes).
MANAGE_USERS = "admin:users:manage"
