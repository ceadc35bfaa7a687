"""Dataset schemas: column names, logical types and nullability, as plain values.

A :class:`Schema` describes the records of a dataset independently of any file
format: it serialises to and from JSON (:meth:`Schema.to_json`), so it can be
stored with a dataset's history and read back without pyarrow (JSON Lines
datasets never need it), and it converts to and from a ``pyarrow.Schema``
(:meth:`Schema.to_arrow`, :meth:`Schema.from_arrow`) for the Arrow codecs.

Logical types
-------------
A :class:`Field` has a ``type`` from this closed vocabulary; physical variants
Arrow keeps apart for storage reasons are one logical type:

==================================  ==============================================
logical type                        Arrow types
==================================  ==============================================
``null``                            null (a column whose every value is null)
``bool``                            bool
``int8`` … ``int64``,               the integer of that width
``uint8`` … ``uint64``
``float16``, ``float32``,           half, float, double
``float64``
``string``                          string, large_string, string_view
``binary``                          binary, large_binary, binary_view, fixed_size_binary
``date``                            date32, date64
``time[s|ms|us|ns]``                time32, time64
``timestamp[unit]``,                timestamp without / with a time zone (``UTC``
``timestamp[unit, tz=ZONE]``        for every spelling of UTC)
``duration[unit]``                  duration
``decimal(P, S)``                   decimal32/64/128/256 of precision P, scale S
``list``                            list, large_list, fixed_size_list, list_view
                                    (one child field, ``item``)
``struct``                          struct (its fields are the children)
``map``                             map (children ``key``, not nullable, and ``value``)
==================================  ==============================================

Dictionary and run-end encoded columns take their value type; extension types
their storage type. Unions and intervals have no logical type.

Evolution
---------
:func:`merge` decides whether the records of a new write fit a recorded schema
and what the dataset's schema is afterwards:

- a recorded column may be absent from a write when it is nullable;
- a column of type ``null`` (every value null) fits any nullable column, and a
  recorded ``null`` column takes the first real type written to it;
- values are converted into the recorded type only where the conversion can be
  checked value by value (an int into a narrower int or into a float, a
  timestamp into another unit, an RFC 3339 string into a timestamp or date);
  the codecs then refuse any value that would change (``1.5`` into an int
  column, ``2**40`` into ``int32``, ``2**53 + 1`` into ``float64``);
- nothing else converts: a float never becomes an int, a number never becomes
  a string;
- ``mode="add_columns"`` also accepts new columns (recorded as nullable; old
  rows read them as null) and **widens** a recorded type when the write's type
  holds every value of it exactly: ``int8 → int16 → int32 → int64``, unsigned
  to a wider signed or unsigned int, ``int8/16, uint8/16 → float32``,
  ``int32, uint32 → float64``, ``float16 → float32 → float64``, a decimal to
  one with at least as many integer and fraction digits, a timestamp, time or
  duration to a finer unit; recursively in lists, maps and structs (whose new
  children are added as nullable). ``int64 → float64`` is not a widening (it
  loses digits above 2**53).
"""

from __future__ import annotations

from ._core import Field as Field
from ._core import Schema as Schema
from ._core import SchemaMode as SchemaMode
from ._core import as_schema as as_schema
from ._core import infer as infer
from ._core import merge as merge

__all__ = ("Field", "Schema", "SchemaMode", "as_schema", "infer", "merge")
