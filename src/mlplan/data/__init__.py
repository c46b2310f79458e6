"""Data: dataset versions with profiles, metadata and lineage; diffs; leak-checked splits."""

from __future__ import annotations

from mlplan.core import psi
from mlplan.data._assign import assign_splits
from mlplan.data._columns import entity_reason, id_columns
from mlplan.data._datasheet import column_rows, datasheet_markdown, format_value, metadata_rows
from mlplan.data._diff import ColumnShift, DatasetDiff, diff_datasets
from mlplan.data._images import image_table, profile_images
from mlplan.data._leakage import Crossing, LeakageReport, check_leakage, leakage_failures
from mlplan.data._metadata import METADATA_FIELDS, describe_dataset, effective_metadata
from mlplan.data._plancheck import check_plan_against_data
from mlplan.data._privacy import REDACTED, pii_reason, redact_profile, suspected_pii
from mlplan.data._profile import QUANTILES, Profiler, column_kind, profile_table
from mlplan.data._ray import (
    Engine,
    check_engine,
    parquet_parts,
    ray_data_context,
    ray_results,
    ray_session,
    ray_worker_errors,
)
from mlplan.data._read import (
    ContentHash,
    DataFormat,
    check_csv,
    content_hash,
    count_lines,
    decimal_name,
    delimiter_name,
    detect_format,
    list_images,
    read_table,
    row_group_runs,
    scan_table,
    sniff_decimal,
    sniff_delimiter,
)
from mlplan.data._registry import RegisterResult, register_dataset
from mlplan.data._rows import ROW_COLUMN, ExportedRows, export_rows, table_format, write_table
from mlplan.data._scan import check_target_choice, create_from_data, scan_data
from mlplan.data._sensitive import sensitive_reason
from mlplan.data._slices import MISSING, all_slice_masks, slice_masks, slice_rows
from mlplan.data._split import (
    SPLITS,
    SplitData,
    SplitInfo,
    get_split,
    list_splits,
    load_split,
    split_dataset,
)
from mlplan.data._sql import sandboxed_duckdb
from mlplan.data._target import target_problem
from mlplan.data._versions import (
    DatasetSummary,
    DatasetVersionInfo,
    find_by_hash,
    get_dataset,
    list_datasets,
    load_table,
    version_record,
)

__all__ = [
    "METADATA_FIELDS",
    "MISSING",
    "QUANTILES",
    "REDACTED",
    "ROW_COLUMN",
    "SPLITS",
    "ColumnShift",
    "ContentHash",
    "Crossing",
    "DataFormat",
    "DatasetDiff",
    "DatasetSummary",
    "DatasetVersionInfo",
    "Engine",
    "ExportedRows",
    "LeakageReport",
    "Profiler",
    "RegisterResult",
    "SplitData",
    "SplitInfo",
    "all_slice_masks",
    "assign_splits",
    "check_csv",
    "check_engine",
    "check_leakage",
    "check_plan_against_data",
    "check_target_choice",
    "column_kind",
    "column_rows",
    "content_hash",
    "count_lines",
    "create_from_data",
    "datasheet_markdown",
    "decimal_name",
    "delimiter_name",
    "describe_dataset",
    "detect_format",
    "diff_datasets",
    "effective_metadata",
    "entity_reason",
    "export_rows",
    "find_by_hash",
    "format_value",
    "get_dataset",
    "get_split",
    "id_columns",
    "image_table",
    "leakage_failures",
    "list_datasets",
    "list_images",
    "list_splits",
    "load_split",
    "load_table",
    "metadata_rows",
    "parquet_parts",
    "pii_reason",
    "profile_images",
    "profile_table",
    "psi",
    "ray_data_context",
    "ray_results",
    "ray_session",
    "ray_worker_errors",
    "read_table",
    "redact_profile",
    "register_dataset",
    "row_group_runs",
    "sandboxed_duckdb",
    "scan_data",
    "scan_table",
    "sensitive_reason",
    "slice_masks",
    "slice_rows",
    "sniff_decimal",
    "sniff_delimiter",
    "split_dataset",
    "suspected_pii",
    "table_format",
    "target_problem",
    "version_record",
    "write_table",
]
