// Reversal of a sequence, element by element from the front.
function Rev(s: seq<int>): seq<int>
{
  if |s| == 0 then [] else Rev(s[1..]) + [s[0]]
}

// Reversing twice gives back the sequence.
lemma RevRev(s: seq<int>)
  ensures Rev(Rev(s)) == s
{
  if |s| > 0 {
    RevAppend(Rev(s[1..]), [s[0]]);
    RevRev(s[1..]);
    assert [s[0]] + s[1..] == s;
  }
}

// Reversal turns a concatenation around.
lemma RevAppend(a: seq<int>, b: seq<int>)
  ensures Rev(a + b) == Rev(b) + Rev(a)
{
  if |a| == 0 {
    assert a + b == b;
  } else {
    RevAppend(a[1..], b);
    assert (a + b)[1..] == a[1..] + b;
  }
}
