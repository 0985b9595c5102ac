Require Import List.
Import ListNotations.

(** List reversal, written out. *)
Fixpoint reverse (l : list nat) : list nat :=
  match l with
  | [] => []
  | x :: t => reverse t ++ [x]
  end.

(** Reversing twice gives back the list. *)
Theorem reverse_involutive : forall l : list nat, reverse (reverse l) = l.
Proof.
  assert (distr : forall a b : list nat, reverse (a ++ b) = reverse b ++ reverse a).
  { induction a as [| x t IH]; intros b; simpl.
    - rewrite app_nil_r. reflexivity.
    - rewrite IH. rewrite app_assoc. reflexivity. }
  induction l as [| x t IH]; simpl.
  - reflexivity.
  - rewrite distr. rewrite IH. reflexivity.
Qed.
