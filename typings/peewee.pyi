# peewee ships stubs (peewee-stubs) that type every query result as Model and know nothing of
# the fields peewee adds (id, <foreign key>_id): they flag correct code throughout the index.
# Lightbox type-checks its own code against an untyped peewee instead.
from typing import Any

def __getattr__(name: str) -> Any: ...
