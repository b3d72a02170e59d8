"""Alembic environment of the attempt store.

``Store.open`` runs the migrations on its own connection (passed in ``config.attributes
["connection"]``, inside the transaction that holds the store's migration lock). By hand (a new
revision, SQL for a DBA), with an ``alembic.ini`` whose ``[alembic] script_location`` is this
folder::

    alembic -x url=sqlite:////tmp/dev.db upgrade head
    alembic -x url=sqlite:////tmp/dev.db revision --autogenerate -m "what changed"
    alembic -x url=postgresql://admin@host/spinesim upgrade head --sql

the URL comes from ``-x url=``, else the ``sqlalchemy.url`` option, else
:func:`simulator.records.store.database_url`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from simulator.records.store_schema import metadata

config = context.config


def _url() -> str:
    from simulator.records.store import database_url, normalise_url

    return normalise_url(context.get_x_argument(as_dictionary=True).get("url")
                         or config.get_main_option("sqlalchemy.url") or database_url())


def _configure(**kwargs) -> None:
    # batch mode: SQLite alters a table by copying it, which later revisions will need
    context.configure(target_metadata=metadata, compare_type=True, render_as_batch=True, **kwargs)


if context.is_offline_mode():
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    else:
        engine = create_engine(_url())
        with engine.begin() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
        engine.dispose()
