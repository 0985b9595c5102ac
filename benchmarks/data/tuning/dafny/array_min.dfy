// The smallest element of a non-empty array.
method ArrayMin(a: array<int>) returns (m: int)
  requires a.Length > 0
  ensures forall i :: 0 <= i < a.Length ==> m <= a[i]
  ensures exists i :: 0 <= i < a.Length && m == a[i]
