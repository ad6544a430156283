"""datacon in one page: a conversation, its items and a chain of responses in SQLite.

Run it twice: the data lives in ./datacon-demo.db, so the second run finds the first one's.
"""

from datetime import UTC, datetime

from datacon import (
    ListParams,
    NewConversation,
    NewConversationItem,
    SqliteConfig,
    StorageFactoryConfig,
    StoredResponse,
    create_storage,
)

config = StorageFactoryConfig(backend="sqlite", sqlite=SqliteConfig(path="datacon-demo.db"))

with create_storage(config) as storage:
    # What earlier runs stored: each run tags its responses with the "demo" identifier.
    earlier = storage.responses.list_identifier_responses("demo")  # newest first
    conversation_ids = list(dict.fromkeys(r.conversation_id for r in earlier))
    print(f"run {len(conversation_ids) + 1}: found {len(conversation_ids)} earlier conversation(s)")
    for conversation_id in conversation_ids[:3]:
        newest = next(r for r in earlier if r.conversation_id == conversation_id)
        chain = storage.responses.get_response_chain(newest.id)
        items = storage.items.list_items(conversation_id or "", ListParams(limit=10))
        print(f"  {conversation_id}: {len(items)} items, a chain of {len(chain)} responses:")
        for response in chain:
            print(f"    {response.input[0]['content']!r} -> {response.raw_response['output']!r}")

    # A new conversation with three turns: each turn is a user item, an assistant item and
    # a response chained to the previous one by previous_response_id.
    conv = storage.conversations.create_conversation(NewConversation(metadata={"topic": "demo"}))
    previous = None
    for question, answer in [("Hello!", "Hi there."), ("What is datacon?", "A storage layer."), ("Thanks", "Bye!")]:
        for role, text in (("user", question), ("assistant", answer)):
            item = storage.items.create_item(
                NewConversationItem("message", [{"type": "text", "text": text}], role=role)
            )
            storage.items.link_item(conv.id, item.id, datetime.now(UTC))
        response = StoredResponse(
            previous_response_id=previous,
            conversation_id=conv.id,
            input=[{"role": "user", "content": question}],
            raw_response={"output": answer},
            model="demo-model",
            safety_identifier="demo",
        )
        storage.responses.store_response(response)
        previous = response.id

    print(f"stored {conv.id}:")
    for item in storage.items.list_items(conv.id, ListParams(limit=10)):
        print(f"  {item.role:>9}: {item.content[0]['text']}")
    assert previous is not None
    chain = storage.responses.get_response_chain(previous)
    print(f"  response chain, oldest first: {' -> '.join(r.id for r in chain)}")
