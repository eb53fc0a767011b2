from django.db import migrations

# search() filters chunks on bot_id and on the bot's source ids. The planner multiplied the two
# selectivities as if they were independent (a 10k-chunk bot estimated at ~800 rows), so for a
# mid-size bot it picked a full-text plan that matched the query's words across every bot's rows
# and then intersected (22 ms instead of 3 ms in benchmarks/retrieval_latency.py). Functional
# dependency statistics tell it that a source id implies its bot; ANALYZE (autovacuum) fills them.
CREATE = """
CREATE STATISTICS IF NOT EXISTS knowledge_chunk_bot_source (dependencies)
ON bot_id, source_id FROM knowledge_chunk;
"""
DROP = "DROP STATISTICS IF EXISTS knowledge_chunk_bot_source;"


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0003_bot_fulltext_index")]
    operations = [migrations.RunSQL(CREATE, DROP)]
