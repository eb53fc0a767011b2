from django.urls import path

from . import views

app_name = "knowledge"

urlpatterns = [
    path("", views.knowledge_page, name="page"),
    path("sources/", views.source_add, name="source_add"),
    path("sources/<int:source_id>/", views.source_row, name="source_row"),
    path("sources/<int:source_id>/reingest/", views.source_reingest, name="source_reingest"),
    path("sources/<int:source_id>/delete/", views.source_delete, name="source_delete"),
    path("sources/<int:source_id>/chunks/", views.source_chunks, name="source_chunks"),
    path("reembedding/", views.reembedding_panel, name="reembedding"),
    path("reembedding/retry/", views.reembedding_retry, name="reembedding_retry"),
    path("faq/", views.faq_list, name="faq_list"),
    path("faq/new/", views.faq_create, name="faq_create"),
    path("faq/<int:entry_id>/", views.faq_row, name="faq_row"),
    path("faq/<int:entry_id>/edit/", views.faq_edit, name="faq_edit"),
    path("faq/<int:entry_id>/delete/", views.faq_delete, name="faq_delete"),
    path("faq/bulk-delete/", views.faq_bulk_delete, name="faq_bulk_delete"),
]
