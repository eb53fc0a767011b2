from django.db import migrations

# The shared HNSW index of every bot's MiniLM chunks (0002) is replaced by one HNSW index per
# large bot (knowledge.vector_indexes): filtered after the scan, the shared one stepped over
# other bots' rows and slowed down as the table grew. The per-bot indexes of existing bots are
# built by the worker after it starts and by beat's hourly sweep (CONCURRENTLY, outside this
# migration's transaction); search scans exactly until then.
DROP = "DROP INDEX IF EXISTS knowledge_chunk_hnsw_minilm;"
CREATE = """
CREATE INDEX IF NOT EXISTS knowledge_chunk_hnsw_minilm
ON knowledge_chunk USING hnsw ((embedding::vector(384)) vector_cosine_ops)
WHERE embedding_model = 'local:all-MiniLM-L6-v2';
"""


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0007_staged_vector")]
    operations = [migrations.RunSQL(DROP, CREATE)]
