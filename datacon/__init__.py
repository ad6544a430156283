"""datacon: storage for LLM gateways (conversations, items, chained responses), many backends."""

from datacon._version import __version__
from datacon.config import (
    HistoryBackend,
    OracleConfig,
    PostgresConfig,
    RedisConfig,
    SqliteConfig,
    StorageFactoryConfig,
    load_config,
)
from datacon.context import RequestContext, current_request_context, request_context
from datacon.factory import create_storage
from datacon.hooks import BeforeHookResult, StorageHook, StorageOperation
from datacon.ids import make_item_id
from datacon.models import (
    Conversation,
    ConversationItem,
    ConversationPage,
    ItemPage,
    ListParams,
    NewConversation,
    NewConversationItem,
    PruneReport,
    ResponseChain,
    SortOrder,
    StoredResponse,
)
from datacon.schema import ColumnDef, SchemaConfig, TableConfig
from datacon.storage import ConversationItemStorage, ConversationStorage, HealthReport, ResponseStorage, Storage

__all__ = [
    "BeforeHookResult",
    "ColumnDef",
    "Conversation",
    "ConversationItem",
    "ConversationItemStorage",
    "ConversationPage",
    "ConversationStorage",
    "HealthReport",
    "HistoryBackend",
    "ItemPage",
    "ListParams",
    "NewConversation",
    "NewConversationItem",
    "OracleConfig",
    "PostgresConfig",
    "PruneReport",
    "RedisConfig",
    "RequestContext",
    "ResponseChain",
    "ResponseStorage",
    "SchemaConfig",
    "SortOrder",
    "SqliteConfig",
    "Storage",
    "StorageFactoryConfig",
    "StorageHook",
    "StorageOperation",
    "StoredResponse",
    "TableConfig",
    "__version__",
    "create_storage",
    "current_request_context",
    "load_config",
    "make_item_id",
    "request_context",
]
