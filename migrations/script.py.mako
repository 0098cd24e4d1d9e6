"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
<%
    # Autogenerate renders the bigquery_*_partitioning options as these classes
    # without importing them; import the ones used and not imported yet.
    code = (upgrades or "") + (downgrades or "")
    bigquery_names = [
        name
        for name in ("PartitionRange", "RangePartitioning", "TimePartitioning")
        if name + "(" in code and name not in (imports or "")
    ]
%>\
% if bigquery_names:
from google.cloud.bigquery import ${", ".join(bigquery_names)}
% endif
${imports if imports else ""}

# revision identifiers, used by Alembic.
revision: str = ${repr(up_revision)}
down_revision: Union[str, Sequence[str], None] = ${repr(down_revision)}
branch_labels: Union[str, Sequence[str], None] = ${repr(branch_labels)}
depends_on: Union[str, Sequence[str], None] = ${repr(depends_on)}


def upgrade() -> None:
    """Upgrade schema."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Downgrade schema."""
    ${downgrades if downgrades else "pass"}
