"""The 23 feature fields of Ali-CCP (Tianchi dataset page, Table 2)."""

USER_FIELDS = ("101", "121", "122", "124", "125", "126", "127", "128", "129", "109_14", "110_14", "127_14", "150_14")
ITEM_FIELDS = ("205", "206", "207", "210", "216")
COMBINATION_FIELDS = ("508", "509", "702", "853")
CONTEXT_FIELDS = ("301",)
FIELDS = USER_FIELDS + ITEM_FIELDS + COMBINATION_FIELDS + CONTEXT_FIELDS
# Fields with several values per impression in the raw data (PaddleRec's multi-hot sample):
# the user's two-week behaviour bags, the item's intention nodes and the combinations.
MULTI_VALUED = ("109_14", "110_14", "127_14", "150_14", "210", "508", "509", "702", "853")
# Fields whose feature_value carries a number (a count), kept as numeric feature "D<field>"
# as torch-rechub does.
DENSE = ("109_14", "110_14", "127_14", "150_14", "508", "509", "702", "853")


def dense_name(field: str) -> str:
    return f"D{field}"
