"""Key names of the Redis backend: upstream's layout, with the ids that could collide escaped.

Upstream names keys ``P conversation:{id}``, ``P conversation:{id}:items``, ``P item:{id}``,
``P response:{id}`` and ``P safety:{identifier}:responses`` (``P`` is ``"{owner}:"`` or empty);
datacon adds ``P link_seq:{id}``, a conversation's link sequences, ``P idempotency:...``,
idempotency keys (strings with a TTL, see ``Keys.idempotency``), and the retention indexes
(``P items:created``, ``P responses:created``, ``P item_links:{id}``,
``P conversation_responses:{id}``, ``P datacon:layout``; see ``store``), and each item's
packed copy (``P item_packed:{id}``, layout 3, read by ``list_items``).
Taken literally, a conversation whose id ends in ``:items`` shares its key with another
conversation's links. So the id part of a key is:

- the id itself when it is *plain*: no ``:``, ``{`` or ``}``, and not starting with ``%``
  (every id datacon or upstream generates is plain, so their keys are upstream's);
- otherwise ``%`` followed by the id with ``%``, ``:``, ``{`` and ``}`` percent-encoded
  (``X:items`` -> ``%X%3Aitems``).

The id part of a key therefore never contains ``:`` (a key splits into its parts on ``:``, so
no two records share a key whatever their ids) nor a brace (a Redis Cluster hash tag ``{...}``
can later be put around it), and the mapping is injective: plain parts never start with
``%``, escaped parts always do, and percent-encoding is injective. ``LUA_KEY_PART`` is the
same function for the scripts, which derive item and response keys from ids they read.
"""

from __future__ import annotations

from urllib.parse import unquote

__all__ = ["CLUSTER_TAG", "ESCAPE", "LUA_KEY_PART", "Keys", "id_of_part", "key_part"]

ESCAPE = "%"
#: The hash tag of an owner-less schema's keys in a Redis Cluster.
CLUSTER_TAG = "datacon"
_ENCODE = str.maketrans({"%": "%25", ":": "%3A", "{": "%7B", "}": "%7D"})


def key_part(record_id: str) -> str:
    """The part of a key that names ``record_id`` (see the module docstring)."""
    if record_id[:1] == ESCAPE or ":" in record_id or "{" in record_id or "}" in record_id:
        return ESCAPE + record_id.translate(_ENCODE)
    return record_id


def id_of_part(part: str) -> str | None:
    """The id that ``key_part`` maps to ``part``, or ``None`` when datacon would not write ``part``."""
    record_id = unquote(part[1:]) if part[:1] == ESCAPE else part
    return record_id if record_id and key_part(record_id) == part else None


# The same function in Lua (the scripts' item and response keys come from ids they read).
LUA_KEY_PART = r"""
local function key_part(id)
  -- Plain searches (no pattern): this runs for every item a page reads.
  if string.byte(id, 1) == 37 or string.find(id, ':', 1, true) or string.find(id, '{', 1, true)
      or string.find(id, '}', 1, true) then
    return '%' .. (string.gsub(id, '[%%:{}]', function(c) return string.format('%%%02X', string.byte(c)) end))
  end
  return id
end
"""


class Keys:
    """Every key of one schema (``owner`` prefixes them all).

    In a Redis Cluster (``cluster=True``) the prefix is a hash tag, ``{owner}:`` (``{datacon}:``
    without an owner), so every key of the schema hashes to one slot: each script and
    transaction runs on one master, atomic as on a single server. Id parts never hold a brace
    (see above), so the prefix is the key's only tag.
    """

    def __init__(self, owner: str | None, *, cluster: bool = False) -> None:
        if cluster:
            self.prefix = "{" + (owner or CLUSTER_TAG) + "}:"
        else:
            self.prefix = f"{owner}:" if owner else ""
        self.conversation_prefix = f"{self.prefix}conversation:"
        self.item_prefix = f"{self.prefix}item:"
        self.response_prefix = f"{self.prefix}response:"
        self.safety_prefix = f"{self.prefix}safety:"
        self.sequence_prefix = f"{self.prefix}link_seq:"
        self.idempotency_prefix = f"{self.prefix}idempotency:"
        self.conversations_list = f"{self.prefix}conversations:list"
        self.conversations_by_prefix = f"{self.prefix}conversations:by:"
        # Retention indexes (layout 2, see ``migrate``): records by ``created_at``, the
        # conversations linking each item, and the identified responses naming each conversation.
        self.items_created = f"{self.prefix}items:created"
        self.responses_created = f"{self.prefix}responses:created"
        self.item_links_prefix = f"{self.prefix}item_links:"
        self.conversation_responses_prefix = f"{self.prefix}conversation_responses:"
        #: Each item's packed copy (layout 3): one JSON string of the fields ``list_items`` reads.
        self.item_packed_prefix = f"{self.prefix}item_packed:"
        #: The layout version ``datacon migrate`` (or the first look at an empty schema) reached.
        self.layout = f"{self.prefix}datacon:layout"
        self.links_suffix = ":items"
        #: A conversation's packed set (layout 3): its links' items, packed, in listing order.
        self.packed_suffix = ":packed"
        self.safety_suffix = ":responses"

    def conversation(self, conversation_id: str) -> str:
        return self.conversation_prefix + key_part(conversation_id)

    def links(self, conversation_id: str) -> str:
        return self.conversation_prefix + key_part(conversation_id) + self.links_suffix

    def packed(self, conversation_id: str) -> str:
        """The conversation's packed set (``P conversation:{id}:packed``, layout 3; see ``lua``)."""
        return self.conversation_prefix + key_part(conversation_id) + self.packed_suffix

    def link_keys(self, conversation_id: str) -> list[str]:
        """``links``, ``sequence`` and ``packed`` of the conversation (the linking scripts'
        keys), escaping the id once."""
        part = key_part(conversation_id)
        conversation = self.conversation_prefix + part
        return [conversation + self.links_suffix, self.sequence_prefix + part, conversation + self.packed_suffix]

    def sequence(self, conversation_id: str) -> str:
        """The hash of the conversation's link sequences (``P link_seq:{id}``)."""
        return self.sequence_prefix + key_part(conversation_id)

    def item(self, item_id: str) -> str:
        return self.item_prefix + key_part(item_id)

    def response(self, response_id: str) -> str:
        return self.response_prefix + key_part(response_id)

    def safety(self, identifier: str) -> str:
        return self.safety_prefix + key_part(identifier) + self.safety_suffix

    def item_packed(self, item_id: str) -> str:
        """The item's packed copy (``P item_packed:{id}``, a string; see ``records.Codec.packed``)."""
        return self.item_packed_prefix + key_part(item_id)

    def item_record(self, item_id: str) -> list[str]:
        """``item``, ``items_created`` and ``item_packed`` of the item (``CREATE_RECORD``'s
        keys), escaping the id once."""
        part = key_part(item_id)
        return [self.item_prefix + part, self.items_created, self.item_packed_prefix + part]

    def item_links(self, item_id: str) -> str:
        """The set of the conversations linking the item (``P item_links:{id}``)."""
        return self.item_links_prefix + key_part(item_id)

    def conversation_responses(self, conversation_id: str) -> str:
        """The hash response id -> safety identifier of the identified responses naming the
        conversation (``P conversation_responses:{id}``)."""
        return self.conversation_responses_prefix + key_part(conversation_id)

    def idempotency(self, operation: str, key: str, conversation_id: str | None = None) -> str:
        """An idempotency key of ``operation`` (``P idempotency:{operation}:{key}``; for
        ``append_items``, ``P idempotency:append_items:{conversation id}:{key}``)."""
        scope = operation if conversation_id is None else f"{operation}:{key_part(conversation_id)}"
        return f"{self.idempotency_prefix}{scope}:{key_part(key)}"
