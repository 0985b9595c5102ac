// The sum of a sequence, peeling off its last element.
function SumSeq(s: seq<int>): int
{
  if |s| == 0 then 0 else SumSeq(s[..|s| - 1]) + s[|s| - 1]
}

// The sum of an array's elements, computed with a loop.
method ArraySum(a: array<int>) returns (s: int)
  ensures s == SumSeq(a[..])
