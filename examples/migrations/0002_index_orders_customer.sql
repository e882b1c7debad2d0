{
  "schema": "public",
  "operations": [
    {"create_index": {"table": "orders", "name": "orders_customer_id_idx", "columns": ["customer_id"]}}
  ]
}
