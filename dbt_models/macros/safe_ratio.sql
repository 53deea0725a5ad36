{#- numerator / denominator as a double, NULL when the denominator is 0 or NULL (both adapters). -#}
{% macro safe_ratio(numerator, denominator) -%}
    cast({{ numerator }} as double precision) / nullif(cast({{ denominator }} as double precision), 0)
{%- endmacro %}
