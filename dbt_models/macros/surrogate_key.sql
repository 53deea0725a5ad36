{#- An md5 key over several columns, the same text on DuckDB and PostgreSQL
    (both have md5(varchar) and ||). NULLs become '' so a key is never NULL. -#}
{% macro surrogate_key(columns) -%}
    md5(
    {%- for column in columns %}
        coalesce(cast({{ column }} as varchar), '')
        {%- if not loop.last %} || '|' ||{% endif %}
    {%- endfor %}
    )
{%- endmacro %}
