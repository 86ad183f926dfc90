"""What a backed-up view reads (:func:`datatier.mysql.view_deps.view_reads`), on the text
MariaDB 10.11 gives (``SHOW CREATE VIEW``), its own database's qualifier stripped."""

from __future__ import annotations

from datatier.mysql.sqltext import strip_qualifier
from datatier.mysql.view_deps import view_reads

HEAD = "CREATE ALGORITHM=UNDEFINED DEFINER=`u`@`h` SQL SECURITY DEFINER VIEW `w` AS "


def test_tables_of_joins_ctes_and_subqueries_are_found_and_cte_names_left_out() -> None:
    text = strip_qualifier(
        HEAD + "with c as (select `rvx`.`t`.`a` AS `a` from `rvx`.`t`)select `c`.`a` AS "
        "`a`,(select 1 from `rvy`.`o` `x` limit 1) AS `s` from ((`c` join `rvx`.`t` `z`) "
        "join ((select `rvx`.`t`.`a` AS `a` from `rvx`.`t`) `d` left join `rvy`.`o` "
        "on(`d`.`a` = `rvy`.`o`.`a`)))",
        "rvx",
    )
    assert view_reads(text) == {(None, "t"), ("rvy", "o")}


def test_views_unions_and_quoted_names_with_dots_and_backticks() -> None:
    text = HEAD + (
        "select `w`.`a` AS `a` from `w` union select `t`.`a` AS `a` from `db x`.`t.b``c`"
    )
    assert view_reads(text) == {(None, "w"), ("db x", "t.b`c")}


def test_from_inside_functions_and_strings_is_not_a_table() -> None:
    text = HEAD + (
        "select extract(year from `t`.`d`) AS `y`,trim(leading 'x' from `t`.`s`) AS `s`,"
        "'from `nope`' AS `q` from `t`"
    )
    assert view_reads(text) == {(None, "t")}


def test_a_cte_with_a_column_list_and_a_table_function_are_not_tables() -> None:
    text = HEAD + (
        "with recursive r(n) as (select 1 AS `1` union select `r`.`n` + 1 AS `n` from `r`)"
        "select `r`.`n` AS `n` from (`r` join json_table('[]','$[*]' columns (`x` int path"
        " '$')) `j`)"
    )
    assert view_reads(text) == set()
