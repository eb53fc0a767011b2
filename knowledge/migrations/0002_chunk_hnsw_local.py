from django.db import migrations

# One partial HNSW index per embedding model, over a cast to that model's dimensions (the column
# itself is dimensionless so several models can live in one table). A search uses it when it
# filters on the same embedding_model and orders by the same cast expression.
CREATE = """
CREATE INDEX IF NOT EXISTS knowledge_chunk_hnsw_minilm
ON knowledge_chunk USING hnsw ((embedding::vector(384)) vector_cosine_ops)
WHERE embedding_model = 'local:all-MiniLM-L6-v2';
"""
DROP = "DROP INDEX IF EXISTS knowledge_chunk_hnsw_minilm;"


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_initial")]
    operations = [migrations.RunSQL(CREATE, DROP)]
